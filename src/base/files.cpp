#include "base/files.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

#include "base/fd.h"

namespace tcpshift {

Result<void> replace_file(const std::string& path, const std::string& text, mode_t mode) {
    // One temporary name a process: writers of one file in two processes do not mix.
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!out) return fail(system_error("open " + tmp, errno));
    for (size_t done = 0; done < text.size();) {
        const ssize_t n = ::write(out.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail(system_error("write " + tmp, errno));
        done += static_cast<size_t>(n);
    }
    if (::fsync(out.get()) != 0) return fail(system_error("fsync " + tmp, errno));
    if (::close(out.release()) != 0) return fail(system_error("close " + tmp, errno));
    if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(system_error("rename " + tmp + " to " + path, errno));
    const size_t slash = path.rfind('/');
    Fd parent(::open(slash == std::string::npos ? "." : path.substr(0, slash).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (parent) (void)::fsync(parent.get());
    return {};
}

}  // namespace tcpshift
