#include "dataplane/backend_sockets.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>

#include "bpf/abi.h"
#include "dataplane/map_access.h"
#include "dataplane/sock_diag.h"

namespace tcpshift {

Result<std::vector<uint64_t>> backend_socket_cookies(const DataplaneMaps& maps, uint32_t backend_id) {
    std::vector<uint64_t> cookies;
    for (uint32_t member = 0; member < TS_GROUP_SLOTS; ++member) {
        const uint32_t key = TS_SOCKET_KEY(backend_id, member);
        uint64_t cookie = 0;
        if (bpf_map_lookup_elem(maps.sockets.get(), &key, &cookie) == 0) {
            cookies.push_back(cookie);
        } else if (errno != ENOENT) {
            return fail(system_error("read map \"sockets\"", errno));
        }
    }
    return cookies;
}

Result<std::map<uint32_t, std::vector<BackendSocket>>> backend_sockets(const DataplaneMaps& maps, const Plan& plan,
                                                                       const NetnsId& netns) {
    auto here = current_netns();
    if (!here) return fail(here.error());
    if (here->cookie != netns.cookie)
        return fail(system_error("list the backends' sockets: the caller is not in network namespace " +
                                 std::to_string(netns.inode)));
    auto listening = listening_sockets();
    if (!listening) return fail(listening.error());
    std::map<uint64_t, const ListeningSocket*> by_cookie;
    for (const auto& l : *listening) by_cookie.emplace(l.cookie, &l);
    std::map<uint32_t, std::vector<BackendSocket>> out;
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) {
                if (out.count(b.id)) continue;
                auto cookies = backend_socket_cookies(maps, b.id);
                if (!cookies) return fail(cookies.error());
                auto& sockets = out[b.id];
                for (uint64_t cookie : *cookies) {
                    BackendSocket s{.cookie = cookie};
                    if (auto it = by_cookie.find(cookie); it != by_cookie.end()) {
                        s.listening_on = it->second->local;
                        s.serves = listener_serves(*it->second, b.address);
                    }
                    sockets.push_back(s);
                }
            }
    return out;
}

Result<std::vector<uint32_t>> ready_backends(const DataplaneMaps& maps, const Plan& plan, const NetnsId& netns) {
    auto sockets = backend_sockets(maps, plan, netns);
    if (!sockets) return fail(sockets.error());
    std::vector<uint32_t> ready;
    for (const auto& [id, list] : *sockets)
        if (std::any_of(list.begin(), list.end(), [](const BackendSocket& s) { return s.serves; })) ready.push_back(id);
    return ready;
}

std::string describe(const BackendSocket& socket) {
    if (socket.listening_on) return "listener on " + socket.listening_on->str();
    return "socket " + std::to_string(socket.cookie) + " that listens nowhere in this namespace";
}

Result<void> register_listener(const DataplaneMaps& maps, const ListenerIds& ids, int socket_fd) {
    ts_connection storage{.backend_ids = {ids[0], ids[1]}, .tags = {0, 0}, .flags = TS_CONN_LISTENER};
    for (size_t family = 0; family < 2; ++family) {
        if (ids[family] == TS_NO_BACKEND) continue;
        ts_backend_tag tag{};
        if (auto ok = read_map(maps.backend_tags, "backend_tags", &ids[family], &tag); !ok) return ok;
        storage.tags[family] = tag.tag;
    }
    const int fd = socket_fd;
    if (bpf_map_update_elem(maps.connections.get(), &fd, &storage, BPF_ANY) != 0)
        return fail(system_error("give a backend listener its storage in map \"connections\"", errno));
    const uint64_t sock = static_cast<uint64_t>(socket_fd);
    for (uint32_t id : ids) {
        if (id == TS_NO_BACKEND) continue;
        bool joined = false;
        for (uint32_t member = 0; member < TS_GROUP_SLOTS && !joined; ++member) {
            const uint32_t key = TS_SOCKET_KEY(id, member);
            joined = bpf_map_update_elem(maps.sockets.get(), &key, &sock, BPF_NOEXIST) == 0;
            if (!joined && errno != EEXIST)
                return fail(system_error("insert a listener of backend " + std::to_string(id) + " into map \"sockets\"",
                                         errno));
        }
        if (!joined)
            return fail(system_error("insert a listener of backend " + std::to_string(id) + " into map \"sockets\": all " +
                                     std::to_string(TS_GROUP_SLOTS) + " member slots are taken"));
    }
    return {};
}

}  // namespace tcpshift
