#include "dataplane/listener_keys.h"

#include <sys/socket.h>

#include <map>
#include <set>

#include "bpf/abi.h"
#include "bpf/flow_hash.h"

namespace tcpshift {

ListenerIds serving(uint32_t backend_id, const Endpoint& address) {
    ListenerIds ids = {TS_NO_BACKEND, TS_NO_BACKEND};
    ids[family_index(address.family)] = backend_id;
    return ids;
}

std::vector<std::pair<Endpoint, ListenerIds>> listener_keys(const Plan& plan) {
    constexpr ListenerIds kNone = {TS_NO_BACKEND, TS_NO_BACKEND};
    std::map<Endpoint, ListenerIds> exact;
    // wildcard key -> client family index -> backends that key could serve
    std::map<Endpoint, std::array<std::set<uint32_t>, 2>> wildcard;
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) {
                if (b.remote) continue;  // no listener here serves it
                const size_t family = family_index(b.address.family);
                exact.emplace(b.address, kNone).first->second[family] = b.id;
                wildcard[Endpoint{.family = b.address.family, .port = b.address.port}][family].insert(b.id);
                if (b.address.family == AF_INET)
                    wildcard[Endpoint{.family = AF_INET6, .port = b.address.port}][0].insert(b.id);
            }
    std::vector<std::pair<Endpoint, ListenerIds>> keys(exact.begin(), exact.end());
    for (const auto& [ep, candidates] : wildcard) {
        if (exact.count(ep)) continue;
        ListenerIds ids = kNone;
        for (size_t family = 0; family < 2; ++family)
            if (candidates[family].size() == 1) ids[family] = *candidates[family].begin();
        if (ids != kNone) keys.emplace_back(ep, ids);
    }
    return keys;
}

uint32_t backend_tag(const Endpoint& address) {
    __u64 h = ts_mix64(static_cast<__u64>(address.family) << 16 | address.port);
    for (uint32_t word : address.addr) h = ts_fold(h, word);
    // 0 is what an id that never had an address reads; a real address never tags as 0.
    return static_cast<uint32_t>(h >> 32) | 1;
}

}  // namespace tcpshift
