#include "dataplane/verify.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "bpf/abi.h"
#include "config/duration.h"
#include "dataplane/attach.h"
#include "dataplane/backend_sockets.h"
#include "dataplane/install.h"
#include "dataplane/listener_keys.h"
#include "dataplane/map_access.h"
#include "dataplane/pins.h"

namespace tcpshift {

namespace {

// The name of a kernel table's TS_BALANCE_* code, as explain and status name the modes.
std::string balance_code_name(uint32_t code) {
    for (Balance b : {Balance::kHash, Balance::kRandom, Balance::kRoundRobin, Balance::kLeastConn})
        if (balance_code(b) == code) return balance_name(b);
    return "mode " + std::to_string(code);
}

Endpoint key_endpoint(__u32 family, __u32 port, const __u32 addr[4]) {
    Endpoint ep{.family = static_cast<int>(family), .port = static_cast<uint16_t>(port)};
    std::memcpy(ep.addr.data(), addr, sizeof(ep.addr));
    return ep;
}

using Diff = std::vector<std::string>;

Result<void> diff_frontends(const DataplaneMaps& maps, const Plan& plan, Diff& diff) {
    std::map<Endpoint, uint32_t> want;
    std::map<uint32_t, std::string> service_names;
    for (const auto& svc : plan.services) {
        service_names[svc.id] = svc.name;
        for (const auto& f : svc.frontends) want[f] = svc.id;
    }
    auto keys = map_keys<ts_frontend_key>(maps.frontends, "frontends");
    if (!keys) return fail(keys.error());
    std::set<Endpoint> seen;
    for (const auto& key : *keys) {
        const Endpoint ep = key_endpoint(key.family, key.port, key.addr);
        seen.insert(ep);
        ts_frontend value{};
        if (bpf_map_lookup_elem(maps.frontends.get(), &key, &value) != 0) continue;
        auto it = want.find(ep);
        if (it == want.end()) {
            diff.push_back("frontend " + ep.str() + " is installed but not configured");
        } else if (it->second != value.service_id) {
            diff.push_back("frontend " + ep.str() + " leads to service id " + std::to_string(value.service_id) +
                           ", configured: " + service_names[it->second] + " (id " + std::to_string(it->second) + ")");
        }
    }
    for (const auto& [ep, id] : want)
        if (!seen.count(ep)) diff.push_back("frontend " + ep.str() + " of service " + service_names[id] + " is missing");
    return {};
}

Result<void> diff_tables(const DataplaneMaps& maps, const Plan& plan, Diff& diff) {
    auto table = std::make_unique<ts_table>();
    std::set<uint32_t> configured;
    for (const auto& svc : plan.services) {
        for (uint32_t family = 0; family < svc.tables.size(); ++family) {
            const FamilyTable& want = svc.tables[family];
            if (want.slots.empty() && !want.elided()) continue;  // no frontend of this family
            if (want.elided())
                return fail(system_error("service " + svc.name + ": a plan read from the plan cache cannot be verified"));
            const uint32_t table_id = TS_TABLE_ID(svc.id, family);
            configured.insert(table_id);
            const std::string prefix = "service " + svc.name + " (id " + std::to_string(svc.id) + "), " +
                                       (family ? "IPv6" : "IPv4") + " clients: ";
            if (bpf_map_lookup_elem(maps.tables.get(), &table_id, table.get()) != 0) {
                if (errno != ENOENT) return fail(system_error("read map \"tables\"", errno));
                diff.push_back(prefix + "no table: sk_lookup refuses them");
                continue;
            }
            ts_table header{};
            table_header(svc, want, header);
            if (table->affinity != header.affinity) diff.push_back(prefix + "live table has another affinity");
            if (table->balance != header.balance || table->slot_count != header.slot_count)
                diff.push_back(prefix + "live table draws by " + balance_code_name(table->balance) + " over " +
                               std::to_string(table->slot_count) + " slots; configured: " +
                               balance_name(svc.balance.mode) + " over " +
                               std::to_string(header.slot_count));
            if ((table->flags & TS_TABLE_KEEPALIVE) != (header.flags & TS_TABLE_KEEPALIVE) ||
                table->keepalive_time != header.keepalive_time ||
                table->keepalive_interval != header.keepalive_interval ||
                table->keepalive_probes != header.keepalive_probes)
                diff.push_back(prefix + "live table has another TCP keepalive");
            if (table->min_health_percent != header.min_health_percent)
                diff.push_back(prefix + "live table ignores ejections below " +
                               std::to_string(table->min_health_percent) + "% of its backends available; configured: " +
                               std::to_string(header.min_health_percent) + "%");
            if ((table->flags & TS_TABLE_WARMUP) != (header.flags & TS_TABLE_WARMUP) ||
                table->warmup_ns != header.warmup_ns ||
                !std::equal(std::begin(header.warmup_curve), std::end(header.warmup_curve), table->warmup_curve))
                diff.push_back(prefix + "live table ramps a new backend up over " +
                               duration_str(table->flags & TS_TABLE_WARMUP ? table->warmup_ns / 1000000 : 0) +
                               (table->flags & TS_TABLE_WARMUP ? "" : " (no warmup)") + "; configured: " +
                               (header.warmup_ns ? duration_str(header.warmup_ns / 1000000) : "no warmup"));
            if (table->backend_count != want.weighted_backends.size() ||
                !std::equal(want.weighted_backends.begin(), want.weighted_backends.end(), table->backends))
                diff.push_back(prefix + "live table has other weighted backends");
            else if (!std::equal(want.group_first.begin(), want.group_first.end(), table->group_first) ||
                     !std::equal(want.group_size.begin(), want.group_size.end(), table->group_size))
                diff.push_back(prefix + "live table groups its backends into other subsets");
            size_t differing = 0;
            for (size_t i = 0; i < want.slots.size(); ++i) {
                const uint32_t pos = table->slots[i];
                const uint32_t live_id = pos < table->backend_count ? table->backends[pos] : TS_NO_BACKEND;
                differing += live_id != want.slots[i];
            }
            if (differing)
                diff.push_back(prefix + std::to_string(differing) + " of " + std::to_string(want.slots.size()) +
                               " slots differ from the configured weights");
        }
    }
    auto held = map_keys<uint32_t>(maps.tables, "tables");
    if (!held) return fail(held.error());
    for (uint32_t id : *held)
        if (!configured.count(id))
            diff.push_back("table " + std::to_string(id) + " (service id " + std::to_string(id / TS_TABLE_FAMILIES) +
                           ", " + (id % TS_TABLE_FAMILIES ? "IPv6" : "IPv4") +
                           " clients) is held, but no configured service has it");
    return {};
}

std::string ids_str(const ListenerIds& ids) {
    auto one = [](uint32_t id) { return id == TS_NO_BACKEND ? std::string("none") : std::to_string(id); };
    return "backend ids " + one(ids[0]) + " (IPv4 clients), " + one(ids[1]) + " (IPv6 clients)";
}

Result<void> diff_listeners(const DataplaneMaps& maps, const Plan& plan, const NetnsId& netns, Diff& diff) {
    std::map<Endpoint, ListenerIds> want;
    for (const auto& [ep, ids] : listener_keys(plan)) want[ep] = ids;
    auto keys = map_keys<ts_listener_key>(maps.listeners, "listeners");
    if (!keys) return fail(keys.error());
    std::set<Endpoint> seen;
    for (const auto& key : *keys) {
        if (key.netns_cookie != netns.cookie) continue;
        const Endpoint ep = key_endpoint(key.family, key.port, key.addr);
        seen.insert(ep);
        ts_listener value{};
        if (bpf_map_lookup_elem(maps.listeners.get(), &key, &value) != 0) continue;
        const ListenerIds ids = {value.backend_ids[0], value.backend_ids[1]};
        auto it = want.find(ep);
        if (it == want.end()) {
            diff.push_back("listener key " + ep.str() + " is registered but no backend listens there");
        } else if (it->second != ids) {
            diff.push_back("listener key " + ep.str() + " leads to " + ids_str(ids) + ", configured: " +
                           ids_str(it->second));
        }
    }
    for (const auto& [ep, ids] : want)
        if (!seen.count(ep)) diff.push_back("listener key " + ep.str() + " is missing");
    return {};
}

// Each backend's address and path, as connect-time steering reads them.
Result<void> diff_backend_addrs(const DataplaneMaps& maps, const Plan& plan, Diff& diff) {
    std::set<uint32_t> seen;  // a backend of two services has the first one's outlier policy
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) {
                if (!seen.insert(b.id).second) continue;
                const ts_backend_addr planned = backend_addr(b, svc.outlier, backend_cap(plan, b.id));
                ts_backend_addr value{};
                if (auto ok = read_map(maps.backend_addrs, "backend_addrs", &b.id, &value); !ok) return ok;
                const Endpoint held = key_endpoint(value.family, value.port, value.addr);
                const bool remote = (value.flags & TS_BACKEND_REMOTE) != 0;
                const std::string name = "backend " + b.address.str() + " (id " + std::to_string(b.id) + ")";
                if (value.family == 0 || held != b.address)
                    diff.push_back(name + ": the kernel holds address " + (value.family ? held.str() : "none"));
                else if (remote != b.remote)
                    diff.push_back(name + ": the kernel reaches it by " + (remote ? "connect-time" : "socket") +
                                   " steering, configured: " + (b.remote ? "connect-time" : "socket"));
                else if (value.max_connections != backend_cap(plan, b.id))
                    diff.push_back(name + ": the kernel caps it at " + std::to_string(value.max_connections) +
                                   " connections (0: none), configured: " + std::to_string(backend_cap(plan, b.id)));
                else if (value.eject_after != planned.eject_after || value.eject_ns != planned.eject_ns ||
                         value.max_ejection_percent != planned.max_ejection_percent)
                    diff.push_back(name + ": the kernel ejects it after " + std::to_string(value.eject_after) +
                                   " failures for " + std::to_string(value.eject_ns / 1000000) +
                                   " ms with at most " + std::to_string(value.max_ejection_percent) +
                                   "% out (0 failures: never), configured: after " +
                                   std::to_string(planned.eject_after) + " for " +
                                   std::to_string(planned.eject_ns / 1000000) + " ms with at most " +
                                   std::to_string(planned.max_ejection_percent) + "%");
            }
    return {};
}

// Connect-time backends need the cgroup programs attached.
void diff_cgroup_programs(const Plan& plan, const NetnsId& netns, Diff& diff) {
    bool connect_time = false;
    for (const auto& svc : plan.services) connect_time = connect_time || service_paths(svc).connect_time;
    if (!connect_time) return;
    const CgroupAttachment attached = cgroup_attachment(netns.inode);
    for (const auto& [program, pin] : kConnectLinks) {
        const std::string name = std::string(pin).substr(sizeof("link_") - 1);
        if (std::find(attached.programs.begin(), attached.programs.end(), name) == attached.programs.end())
            diff.push_back("the " + name + " program of connect-time steering is not attached to a cgroup");
    }
}

}  // namespace

Result<std::vector<std::string>> diff_dataplane(const DataplaneMaps& maps, const Plan& plan, const NetnsId& netns) {
    Diff diff;
    if (auto ok = diff_frontends(maps, plan, diff); !ok) return fail(ok.error());
    if (auto ok = diff_tables(maps, plan, diff); !ok) return fail(ok.error());
    if (auto ok = diff_listeners(maps, plan, netns, diff); !ok) return fail(ok.error());
    if (auto ok = diff_backend_addrs(maps, plan, diff); !ok) return fail(ok.error());
    diff_cgroup_programs(plan, netns, diff);
    auto sockets = backend_sockets(maps, plan, netns);
    if (!sockets) return fail(sockets.error());
    for (const auto& [name, id] : plan.ids.backends)
        for (const auto& s : (*sockets)[id])
            if (!s.serves)
                diff.push_back("backend " + name + " (id " + std::to_string(id) + "): the SOCKHASH holds a " +
                               describe(s) + ", which does not serve " + name);
    return diff;
}

}  // namespace tcpshift
