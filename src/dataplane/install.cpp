#include "dataplane/install.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/failpoint.h"
#include "bpf/abi.h"
#include "dataplane/backend_health.h"
#include "dataplane/listener_keys.h"
#include "dataplane/map_access.h"

namespace tcpshift {

namespace {

ts_frontend_key frontend_key(const Endpoint& ep) {
    ts_frontend_key key{};
    key.family = static_cast<__u32>(ep.family);
    key.port = ep.port;
    std::memcpy(key.addr, ep.addr.data(), sizeof(key.addr));
    return key;
}

ts_listener_key listener_key(const Endpoint& ep, uint64_t cookie) {
    ts_listener_key key{};
    key.netns_cookie = cookie;
    key.family = static_cast<__u32>(ep.family);
    key.port = ep.port;
    std::memcpy(key.addr, ep.addr.data(), sizeof(key.addr));
    return key;
}

// Empties every member slot of a backend in the SOCKHASH, and zeroes its counters: what an
// id keeps of a backend it no longer names.
Result<void> forget_backend(const DataplaneMaps& maps, uint32_t backend_id) {
    for (uint32_t member = 0; member < TS_GROUP_SLOTS; ++member) {
        const uint32_t key = TS_SOCKET_KEY(backend_id, member);
        if (auto ok = delete_from_map(maps.sockets, "sockets", &key); !ok) return ok;
    }
    const ts_backend_health healthy{};
    if (auto ok = update_map(maps.backend_health, "backend_health", &backend_id, &healthy); !ok) return ok;
    const ts_backend_load idle{};
    if (auto ok = update_map(maps.backend_load, "backend_load", &backend_id, &idle); !ok) return ok;
    const ts_backend_sli none{};
    if (auto ok = update_map(maps.backend_sli, "backend_sli", &backend_id, &none); !ok) return ok;
    return clear_percpu(maps.backend_stats, "backend_stats", &backend_id, sizeof(ts_backend_stats));
}

// A backend whose policy no longer ejects is back at once: an ejection under the policy it
// had ends with it. Its counters stay.
Result<void> end_ejection(const DataplaneMaps& maps, uint32_t backend_id) {
    ts_backend_health h{};
    if (auto ok = read_map(maps.backend_health, "backend_health", &backend_id, &h); !ok) return ok;
    if (h.ejected_until_ns == 0 && h.failures == 0 && h.ejections == 0) return {};
    h.ejected_until_ns = 0;
    h.failures = 0;
    h.ejections = 0;
    return update_map(maps.backend_health, "backend_health", &backend_id, &h);
}

// Where each backend of `plan` is and how it is reached; a backend of two services takes the
// outlier policy of the first, and the smaller cap.
Result<void> write_backend_addrs(const DataplaneMaps& maps, const Plan& plan) {
    std::set<uint32_t> written;
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) {
                if (!written.insert(b.id).second) continue;
                const ts_backend_addr value = backend_addr(b, svc.outlier, backend_cap(plan, b.id));
                if (auto ok = update_map(maps.backend_addrs, "backend_addrs", &b.id, &value); !ok) return ok;
                if (value.eject_after == 0)
                    if (auto ok = end_ejection(maps, b.id); !ok) return ok;
            }
    return {};
}

// The ids `next` gives to an address that `previous` did not give them to.
std::vector<std::pair<uint32_t, const PlanBackend*>> new_backend_ids(const Plan& next, const Plan* previous) {
    std::map<uint32_t, Endpoint> before;
    if (previous)
        for (const auto& svc : previous->services)
            for (const auto& subset : svc.subsets)
                for (const auto& b : subset.backends) before.emplace(b.id, b.address);
    std::map<uint32_t, const PlanBackend*> fresh;
    for (const auto& svc : next.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) {
                auto it = before.find(b.id);
                if (it == before.end() || it->second != b.address) fresh.emplace(b.id, &b);
            }
    return {fresh.begin(), fresh.end()};
}

}  // namespace

Result<void> install_listener_keys(const DataplaneMaps& maps, const Plan& next, const Plan* previous,
                                   const NetnsId& netns) {
    for (const auto& [id, backend] : new_backend_ids(next, previous)) {
        const ts_backend_tag tag{.tag = backend_tag(backend->address)};
        if (auto ok = update_map(maps.backend_tags, "backend_tags", &id, &tag); !ok) return ok;
        if (auto ok = forget_backend(maps, id); !ok) return ok;
    }
    if (auto ok = write_backend_addrs(maps, next); !ok) return ok;
    for (const auto& [ep, ids] : listener_keys(next)) {
        const ts_listener_key key = listener_key(ep, netns.cookie);
        const ts_listener value{.backend_ids = {ids[0], ids[1]}};
        if (auto ok = update_map(maps.listeners, "listeners", &key, &value); !ok) return ok;
    }
    return {};
}

namespace {

// Which ways the backends of a table are reached.
uint32_t table_flags(const PlanService& svc, const FamilyTable& t) {
    uint32_t flags = 0;
    for (const auto& subset : svc.subsets)
        for (const auto& b : subset.backends)
            if (std::find(t.weighted_backends.begin(), t.weighted_backends.end(), b.id) != t.weighted_backends.end())
                flags |= b.remote ? TS_TABLE_REMOTE : TS_TABLE_LOCAL;
    return flags;
}


// Whether two tables' headers (what table_header() writes, up to the backends) differ: compared
// whole, so that a policy field the header gains is never missed here.
bool headers_differ(const PlanService& a, const FamilyTable& ta, const PlanService& b, const FamilyTable& tb) {
    auto x = std::make_unique<ts_table>(), y = std::make_unique<ts_table>();
    table_header(a, ta, *x);
    table_header(b, tb, *y);
    return std::memcmp(x.get(), y.get(), offsetof(ts_table, backends)) != 0;
}

bool tables_differ(const PlanService& svc, const PlanService* before) {
    if (!before || before->id != svc.id) return true;
    for (size_t family = 0; family < svc.tables.size(); ++family)
        if (headers_differ(*before, before->tables[family], svc, svc.tables[family]) ||
            before->tables[family].slots != svc.tables[family].slots ||
            before->tables[family].weighted_backends != svc.tables[family].weighted_backends)
            return true;
    return false;
}

// The table of one family as the map holds it: its header, backends, subsets, and each slot as
// the position of its backend in backends[] (0xff, past backend_count, for none).
void fill_table(const PlanService& svc, const FamilyTable& t, ts_table& table) {
    std::memset(&table, 0xff, sizeof(table));
    table_header(svc, t, table);
    std::copy(t.weighted_backends.begin(), t.weighted_backends.end(), table.backends);
    std::copy(t.group_first.begin(), t.group_first.end(), table.group_first);
    std::copy(t.group_size.begin(), t.group_size.end(), table.group_size);
    // A slot names a weighted backend or TS_NO_BACKEND, so only those entries are ever read.
    thread_local std::array<uint8_t, TS_NO_BACKEND + 1> position;
    position[TS_NO_BACKEND] = 0xff;
    for (size_t i = 0; i < t.weighted_backends.size(); ++i)
        position[t.weighted_backends[i]] = static_cast<uint8_t>(i);
    std::transform(t.slots.begin(), t.slots.end(), table.slots, [&](uint16_t id) { return position[id]; });
}

// Replaces a service's tables, each by one update of its entry (see TS_TABLE_ID), after
// sk_lookup is told to remember its choices until `remember_until`. A family that no frontend
// serves has no table.
Result<void> install_table(const DataplaneMaps& maps, const PlanService& svc, uint64_t remember_until) {
    const ts_service service{.remember_until_ns = remember_until};
    if (auto ok = update_map(maps.services, "services", &svc.id, &service); !ok) return ok;
    auto table = std::make_unique<ts_table>();
    for (uint32_t family = 0; family < svc.tables.size(); ++family) {
        const FamilyTable& t = svc.tables[family];
        if (t.elided())
            return fail(system_error("service " + svc.name + ": a plan read from the plan cache has no slots to install"));
        const uint32_t table_id = TS_TABLE_ID(svc.id, family);
        if (t.slots.empty()) {
            if (auto ok = delete_from_map(maps.tables, "tables", &table_id); !ok) return ok;
            continue;
        }
        fill_table(svc, t, *table);
        if (auto ok = update_map(maps.tables, "tables", &table_id, table.get()); !ok) return ok;
    }
    return {};
}

// With net.ipv4.tcp_syncookies=2 every handshake is a cookie one, and a final ACK may come
// long after its SYN: sk_lookup then remembers every flow, always.
bool cookies_always() {
    std::ifstream in("/proc/sys/net/ipv4/tcp_syncookies");  // the calling thread's namespace
    int mode = 1;
    return (in >> mode) && mode == 2;
}

constexpr uint64_t kRememberAlways = ~uint64_t{0};

// Whether this namespace ever answered a SYN with a cookie (TcpExt SyncookiesSent): only a
// cookie's final ACK comes to sk_lookup again after its SYN, so where none was ever sent, no
// handshake can be under way across a table change and it need not wait for one. Unreadable
// counters count as sent.
bool cookies_ever_sent() {
    std::ifstream in("/proc/thread-self/net/netstat");  // the calling thread's namespace
    std::string names, values;
    while (std::getline(in, names) && std::getline(in, values)) {
        if (names.rfind("TcpExt:", 0) != 0) continue;
        std::istringstream n(names), v(values);
        std::string name, value;
        while (n >> name && v >> value)
            if (name == "SyncookiesSent") return value != "0";
    }
    return true;
}

// Before a live table is replaced, sk_lookup starts remembering each flow's backend, long
// enough before the change for the SYNs it will have to honour (see ts_service); where no SYN
// cookie was ever sent, there are none, and the change comes at once.
Result<uint64_t> start_remembering(const DataplaneMaps& maps, const std::vector<const PlanService*>& replaced) {
    if (cookies_always()) return kRememberAlways;
    if (replaced.empty()) return uint64_t{0};
    const uint64_t until = monotonic_ns() + TS_REMEMBER_BEFORE_NS + TS_REMEMBER_AFTER_NS;
    for (const PlanService* svc : replaced) {
        ts_service current{};
        if (auto ok = read_map(maps.services, "services", &svc->id, &current); !ok) return fail(ok.error());
        current.remember_until_ns = until;
        if (auto ok = update_map(maps.services, "services", &svc->id, &current); !ok) return fail(ok.error());
    }
    if (cookies_ever_sent()) std::this_thread::sleep_for(std::chrono::nanoseconds(TS_REMEMBER_BEFORE_NS));
    return until;
}

// Every (service, backend) pair of a plan: the keys of "route_stats".
std::set<std::pair<uint32_t, uint32_t>> routes_of(const Plan& plan) {
    std::set<std::pair<uint32_t, uint32_t>> routes;
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) routes.emplace(svc.id, b.id);
    return routes;
}

// Creates the zeroed counters of the routes `next` adds, before any table steers to them.
Result<void> add_routes(const DataplaneMaps& maps, const Plan& next, const Plan* previous) {
    const auto before = previous ? routes_of(*previous) : std::set<std::pair<uint32_t, uint32_t>>{};
    for (const auto& [service, backend] : routes_of(next)) {
        if (before.count({service, backend})) continue;
        const ts_route_key key{.service_id = service, .backend_id = backend};
        if (auto ok = clear_percpu(maps.route_stats, "route_stats", &key, sizeof(ts_backend_stats)); !ok) return ok;
    }
    return {};
}

// Step 1 of install_plan. The counters of new routes go in first.
Result<void> install_tables(const DataplaneMaps& maps, const Plan& next, const Plan* previous) {
    if (auto ok = add_routes(maps, next, previous); !ok) return ok;
    std::map<std::string, const PlanService*> before_by_name;
    if (previous)
        for (const auto& s : previous->services) before_by_name.emplace(s.name, &s);
    std::vector<const PlanService*> changed, replaced;
    for (const auto& svc : next.services) {
        const auto found = before_by_name.find(svc.name);
        const PlanService* before = found == before_by_name.end() ? nullptr : found->second;
        if (!tables_differ(svc, before)) continue;  // stays live as it is: nothing to write
        changed.push_back(&svc);
        if (before && before->id == svc.id) replaced.push_back(&svc);
    }
    auto remember_until = start_remembering(maps, replaced);
    if (!remember_until) return fail(remember_until.error());
    for (const PlanService* svc : changed) {
        const bool was_live = std::find(replaced.begin(), replaced.end(), svc) != replaced.end();
        const uint64_t until = was_live || *remember_until == kRememberAlways ? *remember_until : 0;
        if (auto ok = install_table(maps, *svc, until); !ok) return ok;
    }
    return {};
}

// Marks the ports of `frontends` in the bitmap. A reader that sees a half-copied bitmap
// sees every bit that the old and the new value share, so no live frontend is skipped.
Result<void> write_frontend_ports(const DataplaneMaps& maps, const std::set<Endpoint>& frontends) {
    ts_frontend_ports ports{};
    for (const auto& ep : frontends) ports.bits[ep.port / 32] |= 1u << (ep.port % 32);
    const uint32_t zero = 0;
    return update_map(maps.frontend_ports, "frontend_ports", &zero, &ports);
}

std::set<Endpoint> frontends_of(const Plan* plan) {
    std::set<Endpoint> out;
    if (plan)
        for (const auto& svc : plan->services) out.insert(svc.frontends.begin(), svc.frontends.end());
    return out;
}

// Steps 2 and 3 of install_plan: the frontends of `next`, now that every table they point to
// is live, and the removal of those only `previous` had. Their ports are marked first, old
// and new together, so no frontend is ever behind a clear bit.
Result<void> install_frontends(const DataplaneMaps& maps, const Plan& next, const Plan* previous) {
    const auto next_frontends = frontends_of(&next);
    auto previous_frontends = frontends_of(previous);
    auto both = next_frontends;
    both.insert(previous_frontends.begin(), previous_frontends.end());
    if (auto ok = write_frontend_ports(maps, both); !ok) return ok;
    for (const auto& svc : next.services) {
        for (const auto& ep : svc.frontends) {
            const ts_frontend_key key = frontend_key(ep);
            const ts_frontend value{.service_id = svc.id};
            if (auto ok = update_map(maps.frontends, "frontends", &key, &value); !ok) return ok;
        }
    }
    for (const auto& ep : previous_frontends) {
        if (next_frontends.count(ep)) continue;
        const ts_frontend_key key = frontend_key(ep);
        if (auto ok = delete_from_map(maps.frontends, "frontends", &key); !ok) return ok;
    }
    return write_frontend_ports(maps, next_frontends);
}

// Step 4 of install_plan: what `previous` had and `next` does not, in reverse order of use:
// counters, then listeners and their sockets.
Result<void> remove_previous(const DataplaneMaps& maps, const Plan& next, const Plan& previous, const NetnsId& netns) {
    std::set<uint32_t> live_services;
    for (const auto& svc : next.services) live_services.insert(svc.id);
    for (const auto& svc : previous.services) {
        if (live_services.count(svc.id)) continue;
        if (auto ok = clear_percpu(maps.service_stats, "service_stats", &svc.id, sizeof(ts_service_stats)); !ok)
            return ok;
    }
    // Listener keys before sockets, so a retired listener that listens again cannot register.
    std::set<Endpoint> kept;
    for (const auto& [ep, ids] : listener_keys(next)) kept.insert(ep);
    for (const auto& [ep, ids] : listener_keys(previous)) {
        if (kept.count(ep)) continue;
        const ts_listener_key key = listener_key(ep, netns.cookie);
        if (auto ok = delete_from_map(maps.listeners, "listeners", &key); !ok) return ok;
    }
    const auto kept_routes = routes_of(next);
    for (const auto& [service, backend] : routes_of(previous)) {
        if (kept_routes.count({service, backend})) continue;
        const ts_route_key key{.service_id = service, .backend_id = backend};
        if (auto ok = delete_from_map(maps.route_stats, "route_stats", &key); !ok) return ok;
    }
    std::set<uint32_t> next_backends;
    for (const auto& [name, id] : next.ids.backends) next_backends.insert(id);
    for (const auto& [name, id] : previous.ids.backends) {
        if (next_backends.count(id)) continue;
        if (auto ok = forget_backend(maps, id); !ok) return ok;
    }
    return {};
}

}  // namespace

uint32_t balance_code(Balance balance) {
    switch (balance) {
        case Balance::kRandom: return TS_BALANCE_RANDOM;
        case Balance::kRoundRobin: return TS_BALANCE_ROUND_ROBIN;
        case Balance::kLeastConn: return TS_BALANCE_LEAST_CONN;
        case Balance::kHash: break;
    }
    return TS_BALANCE_HASH;
}

ts_backend_addr backend_addr(const PlanBackend& b, const OutlierPolicy& outlier, uint32_t max_connections) {
    ts_backend_addr value{};
    value.max_connections = max_connections;
    value.family = static_cast<__u32>(b.address.family);
    value.port = b.address.port;
    std::memcpy(value.addr, b.address.addr.data(), sizeof(value.addr));
    value.flags = b.remote ? TS_BACKEND_REMOTE : 0;
    value.eject_after = b.remote || outlier.written() ? outlier.consecutive_errors : 0;
    value.eject_ns = outlier.base_ejection_ms * 1000000ull;
    value.max_ejection_percent = outlier.max_ejection_percent;
    return value;
}

void table_header(const PlanService& svc, const FamilyTable& t, ts_table& table) {
    // Every byte of the header is written, whatever the caller filled the table with: a field
    // a policy leaves off is 0, as verify expects it.
    std::memset(&table, 0, offsetof(ts_table, backends));
    table.affinity = svc.affinity == Affinity::kSourceIp ? TS_AFFINITY_SOURCE_IP : TS_AFFINITY_NONE;
    table.backend_count = static_cast<__u32>(t.weighted_backends.size());
    table.flags = table_flags(svc, t) | (svc.keepalive.enabled ? TS_TABLE_KEEPALIVE : 0) |
                  (svc.cap.max_connections ? TS_TABLE_CAPPED : 0);
    table.slot_count = static_cast<__u32>(t.slot_count());
    table.balance = balance_code(svc.balance.mode);
    table.keepalive_time = svc.keepalive.time_s;
    table.keepalive_interval = svc.keepalive.interval_s;
    table.keepalive_probes = svc.keepalive.probes;
    table.min_health_percent = svc.outlier.min_health_percent;
    const WarmupPolicy& warmup = svc.balance.warmup;
    if (warmup.duration_ms) {
        table.flags |= TS_TABLE_WARMUP;
        table.warmup_ns = warmup.duration_ms * 1000000ull;
        // Each step of the ramp holds the factor at its middle, in 1/65536ths.
        for (uint32_t step = 0; step < TS_WARMUP_STEPS; ++step) {
            const uint64_t age_ms = (2 * step + 1) * warmup.duration_ms / (2 * TS_WARMUP_STEPS);
            table.warmup_curve[step] =
                static_cast<__u16>(std::min(65535.0, std::round(warmup.factor(age_ms) * 65536)));
        }
    }
}

// Deletes every table that no service of `plan` has: those of services it removed, and any a
// stopped change or a hand left behind.
Result<void> delete_stray_tables(const DataplaneMaps& maps, const Plan& plan) {
    std::set<uint32_t> kept;
    for (const auto& svc : plan.services)
        for (uint32_t family = 0; family < svc.tables.size(); ++family)
            if (svc.tables[family].has_slots()) kept.insert(TS_TABLE_ID(svc.id, family));
    auto held = map_keys<uint32_t>(maps.tables, "tables");
    if (!held) return fail(held.error());
    for (uint32_t id : *held)
        if (!kept.count(id))
            if (auto ok = delete_from_map(maps.tables, "tables", &id); !ok) return ok;
    return {};
}

Result<void> install_plan(const DataplaneMaps& maps, const Plan& next, const Plan* previous, const NetnsId& netns) {
    // 1. Tables, each replaced whole by one update.
    if (auto ok = install_tables(maps, next, previous); !ok) return ok;
    if (auto ok = failpoint("install-after-tables"); !ok) return ok;
    // 2. Frontends, pointing to live tables; 3. removal of the frontends `next` drops.
    if (auto ok = install_frontends(maps, next, previous); !ok) return ok;
    // 4. The rest of what only `previous` had, and tables no service of `next` has.
    if (previous)
        if (auto ok = remove_previous(maps, next, *previous, netns); !ok) return ok;
    return delete_stray_tables(maps, next);
}

}  // namespace tcpshift

namespace tcpshift {

Result<void> fill_written_slots(Plan& next, const Plan* previous, const PlanLimits& limits) {
    std::map<std::string_view, const PlanService*> before_by_name;
    if (previous)
        for (const auto& s : previous->services) before_by_name.emplace(s.name, &s);
    for (auto& svc : next.services) {
        if (!svc.tables[0].elided() && !svc.tables[1].elided()) continue;
        const auto found = before_by_name.find(svc.name);
        if (!tables_differ(svc, found == before_by_name.end() ? nullptr : found->second)) continue;
        if (auto ok = fill_slots(svc, limits); !ok) return ok;
    }
    return {};
}

}  // namespace tcpshift
