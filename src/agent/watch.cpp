#include "agent/watch.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <filesystem>

#include "config/config.h"

namespace tcpshift {

namespace {

namespace fs = std::filesystem;

constexpr const char* kConfigMapData = "..data";  // Kubernetes' atomic writer switches this symlink

}  // namespace

Result<ConfigWatch> ConfigWatch::start(const std::vector<std::string>& paths) {
    ConfigWatch w;
    w.fd_ = Fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!w.fd_) return fail(system_error("inotify_init1", errno));
    constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE;
    for (const auto& path : paths) {
        std::error_code ec;
        const bool dir = fs::is_directory(path, ec);
        const std::string watched = dir ? path : fs::absolute(path).parent_path().string();
        const int wd = ::inotify_add_watch(w.fd_.get(), watched.c_str(), kMask);
        if (wd < 0) return fail(system_error("watch " + watched, errno));
        w.watches_[wd].push_back(dir ? "" : fs::path(path).filename().string());
    }
    return w;
}

bool ConfigWatch::changed() {
    bool relevant = false;
    alignas(inotify_event) char buf[4096];
    ssize_t n;
    while ((n = ::read(fd_.get(), buf, sizeof(buf))) > 0) {
        for (char* p = buf; p < buf + n;) {
            const auto* ev = reinterpret_cast<const inotify_event*>(p);
            const std::string name = ev->len ? ev->name : "";
            relevant = relevant || (ev->mask & IN_Q_OVERFLOW) || name == kConfigMapData;
            if (auto it = watches_.find(ev->wd); it != watches_.end())
                for (const auto& wanted : it->second)
                    relevant = relevant || (wanted.empty() ? is_config_file_name(name) : name == wanted);
            p += sizeof(inotify_event) + ev->len;
        }
    }
    return relevant;
}

}  // namespace tcpshift
