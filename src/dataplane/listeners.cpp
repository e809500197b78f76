#include "dataplane/listeners.h"

#include <dirent.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <fstream>
#include <sstream>

#include "bpf/abi.h"
#include "dataplane/backend_sockets.h"
#include "dataplane/listener_keys.h"

namespace tcpshift {

namespace {

struct DirCloser {
    void operator()(DIR* dir) const { closedir(dir); }
};
using DirHandle = std::unique_ptr<DIR, DirCloser>;

bool is_number(const char* s) {
    if (*s == '\0') return false;
    for (; *s; ++s)
        if (*s < '0' || *s > '9') return false;
    return true;
}

std::string read_comm(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(in, comm);
    return comm;
}

// Would a connection to `frontend` otherwise reach `listener`?
bool overlaps(const Endpoint& frontend, const Endpoint& listener) {
    if (frontend.port != listener.port) return false;
    if (frontend.family != listener.family) {
        // An IPv6 wildcard listener takes IPv4 connections unless it is IPV6_V6ONLY, which
        // /proc does not show; count it as a conflict.
        return frontend.family == AF_INET && listener.family == AF_INET6 && listener.is_wildcard();
    }
    return frontend.is_wildcard() || listener.is_wildcard() || frontend.addr == listener.addr;
}

std::string backend_name(const Plan& plan, uint32_t id) {
    for (const auto& [name, backend_id] : plan.ids.backends)
        if (backend_id == id) return name;
    return "#" + std::to_string(id);
}

}  // namespace

std::map<uint64_t, SocketOwner> socket_owners(const std::set<uint64_t>& inodes) {
    std::map<uint64_t, SocketOwner> owners;
    if (inodes.empty()) return owners;
    DirHandle proc(opendir("/proc"));
    if (!proc) return owners;
    while (dirent* pe = readdir(proc.get())) {
        if (!is_number(pe->d_name)) continue;
        const pid_t pid = static_cast<pid_t>(std::atoi(pe->d_name));
        const std::string fd_dir = std::string("/proc/") + pe->d_name + "/fd";
        DirHandle fds(opendir(fd_dir.c_str()));
        if (!fds) continue;
        while (dirent* fe = readdir(fds.get())) {
            if (!is_number(fe->d_name)) continue;
            char target[64] = {};
            const std::string link = fd_dir + "/" + fe->d_name;
            const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
            if (n <= 0 || std::strncmp(target, "socket:[", 8) != 0) continue;
            const uint64_t inode = std::strtoull(target + 8, nullptr, 10);
            if (!inodes.count(inode) || owners.count(inode)) continue;
            owners[inode] = SocketOwner{.pid = pid, .fd = std::atoi(fe->d_name), .command = read_comm(pid)};
        }
        if (owners.size() == inodes.size()) break;
    }
    return owners;
}

namespace {

// The backends a listening socket serves, as its key says; a v6only [::] socket takes no
// IPv4 client, so it serves no IPv4 entry.
ListenerIds served_by(const ListeningSocket& s, const std::map<Endpoint, ListenerIds>& by_key) {
    auto it = by_key.find(s.local);
    if (it == by_key.end()) return {TS_NO_BACKEND, TS_NO_BACKEND};
    ListenerIds ids = it->second;
    if (s.local.family == AF_INET6 && s.v6only) ids[0] = TS_NO_BACKEND;
    return ids;
}

// Is the socket with `cookie` a registered listener of every backend in `ids`?
Result<bool> registered(const DataplaneMaps& maps, const ListenerIds& ids, uint64_t cookie) {
    for (uint32_t id : ids) {
        if (id == TS_NO_BACKEND) continue;
        auto cookies = backend_socket_cookies(maps, id);
        if (!cookies) return fail(cookies.error());
        if (std::find(cookies->begin(), cookies->end(), cookie) == cookies->end()) return false;
    }
    return true;
}

}  // namespace

Result<size_t> adopt_listeners(const DataplaneMaps& maps, const Plan& plan, std::vector<std::string>* adopted_from) {
    const auto keys = listener_keys(plan);
    const std::map<Endpoint, ListenerIds> by_key(keys.begin(), keys.end());
    auto sockets = listening_sockets();
    if (!sockets) return fail(sockets.error());
    std::map<uint64_t, ListenerIds> wanted;  // socket inode -> backends, for listeners not yet registered
    for (const auto& s : *sockets) {
        const ListenerIds ids = served_by(s, by_key);
        if (ids[0] == TS_NO_BACKEND && ids[1] == TS_NO_BACKEND) continue;
        auto done = registered(maps, ids, s.cookie);
        if (!done) return fail(done.error());
        if (!*done) wanted.emplace(s.inode, ids);
    }
    std::set<uint64_t> inodes;
    for (const auto& [inode, ids] : wanted) inodes.insert(inode);
    const auto owners = socket_owners(inodes);

    size_t adopted = 0;
    for (const auto& [inode, ids] : wanted) {
        auto owner = owners.find(inode);
        if (owner == owners.end()) continue;  // closed since, or held by no process we can see
        Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, owner->second.pid, 0)));
        if (!pidfd) continue;  // the process exited
        Fd sock(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), owner->second.fd, 0)));
        if (!sock) {
            if (errno == EPERM) return fail(system_error("pidfd_getfd from pid " + std::to_string(owner->second.pid), errno));
            continue;
        }
        if (auto ok = register_listener(maps, ids, sock.get()); !ok) return fail(ok.error());
        ++adopted;
        if (adopted_from)
            for (uint32_t id : ids)
                if (id != TS_NO_BACKEND)
                    adopted_from->push_back("adopted the listener of backend " + backend_name(plan, id) + " from " +
                                            owner->second.command + " (pid " + std::to_string(owner->second.pid) +
                                            ")");
    }
    return adopted;
}

Result<void> check_frontend_conflicts(const Plan& plan) {
    auto sockets = listening_sockets();
    if (!sockets) return fail(sockets.error());
    const auto keys = listener_keys(plan);
    std::set<Endpoint> backend_listeners;
    for (const auto& [ep, ids] : keys) backend_listeners.insert(ep);

    for (const auto& svc : plan.services) {
        if (svc.takeover) continue;
        for (const auto& frontend : svc.frontends) {
            for (const auto& s : *sockets) {
                if (backend_listeners.count(s.local) || !overlaps(frontend, s.local)) continue;
                const auto owners = socket_owners({s.inode});
                std::string who = "a socket no process holds";
                if (auto it = owners.find(s.inode); it != owners.end())
                    who = it->second.command + " (pid " + std::to_string(it->second.pid) + ")";
                return fail(config_error(svc.where.str() + ": service \"" + svc.name + "\": frontend " + frontend.str() +
                                         " is a port where " + who + " already listens on " + s.local.str() +
                                         "; stop it, or set spec.takeover: true to steer its connections anyway"));
            }
        }
    }
    return {};
}

}  // namespace tcpshift
