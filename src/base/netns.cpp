#include "base/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>

namespace tcpshift {

Result<Fd> open_netns(const std::string& spec) {
    const std::string path = spec.find('/') == std::string::npos ? "/var/run/netns/" + spec : spec;
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return fail(system_error("open network namespace \"" + path + "\"", errno));
    return fd;
}

Result<NetnsId> current_netns() {
    NetnsId id;
    struct stat st {};
    if (::stat("/proc/thread-self/ns/net", &st) != 0)
        return fail(system_error("stat /proc/thread-self/ns/net", errno));
    id.inode = st.st_ino;
    Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!sock) return fail(system_error("socket for SO_NETNS_COOKIE", errno));
    socklen_t len = sizeof(id.cookie);
    if (::getsockopt(sock.get(), SOL_SOCKET, SO_NETNS_COOKIE, &id.cookie, &len) != 0)
        return fail(system_error("getsockopt SO_NETNS_COOKIE (needs Linux 5.14 or later)", errno));
    return id;
}

Result<NetnsId> netns_id(const std::string& spec) {
    auto scope = ScopedNetns::enter(spec);
    if (!scope) return fail(scope.error());
    return current_netns();
}

Result<uint64_t> netns_inode(const std::string& spec) {
    if (spec.empty()) {
        auto here = current_netns();
        if (!here) return fail(here.error());
        return here->inode;
    }
    auto fd = open_netns(spec);
    if (!fd) return fail(fd.error());
    struct stat st {};
    if (::fstat(fd->get(), &st) != 0) return fail(system_error("stat network namespace \"" + spec + "\"", errno));
    return static_cast<uint64_t>(st.st_ino);
}

Result<ScopedNetns> ScopedNetns::enter(const std::string& spec) {
    ScopedNetns scope;
    if (spec.empty()) return scope;
    auto target = open_netns(spec);
    if (!target) return fail(target.error());
    Fd original(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!original) return fail(system_error("open /proc/thread-self/ns/net", errno));
    if (::setns(target->get(), CLONE_NEWNET) != 0) return fail(system_error("enter network namespace \"" + spec + "\"", errno));
    scope.original_ = std::move(original);
    return scope;
}

ScopedNetns::~ScopedNetns() {
    if (original_) ::setns(original_.get(), CLONE_NEWNET);
}

}  // namespace tcpshift
