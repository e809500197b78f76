#include "compile/plan.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string_view>

#include "bpf/abi.h"
#include "compile/weight_table.h"

static_assert(tcpshift::kMaxTableSlots == TS_TABLE_SLOTS, "config/config.h and bpf/abi.h disagree");

namespace tcpshift {

PlanLimits default_limits() {
    return PlanLimits{
        .max_services = TS_MAX_SERVICES,
        .max_service_backends = TS_MAX_SERVICE_BACKENDS,
        .max_backends = TS_MAX_BACKENDS,
        .max_frontends = TS_MAX_FRONTENDS,
        .max_routes = TS_MAX_ROUTES,
        .table_slots = TS_TABLE_SLOTS,
    };
}

const PlanService* Plan::find_service(const std::string& name) const {
    for (const auto& s : services)
        if (s.name == name) return &s;
    return nullptr;
}

std::vector<Endpoint> Plan::local_addresses() const {
    std::set<Endpoint> all;
    for (const auto& s : services) all.insert(s.local_addresses.begin(), s.local_addresses.end());
    return {all.begin(), all.end()};
}

namespace {

// Keeps the ids of names seen before and gives new names the lowest free id below `limit`.
// An id the previous plan gave to a name that is gone stays unused for this plan: until this
// plan is installed, its socket and counters in the maps still belong to the old name.
class IdAllocator {
   public:
    IdAllocator(const std::map<std::string, uint32_t>& previous, uint32_t limit) : previous_(previous), limit_(limit) {
        for (const auto& [name, id] : previous) used_.insert(id);
    }

    // Pass 1: reserve every id a name already had.
    void keep(const std::string& name) {
        if (auto it = previous_.find(name); it != previous_.end() && it->second < limit_ && !kept_.count(it->second)) {
            kept_.insert(it->second);
            assigned_[name] = it->second;
        }
    }
    // Pass 2: the id of a name, allocating when it is new; -1 when the space is full.
    int64_t id(const std::string& name) {
        if (auto it = assigned_.find(name); it != assigned_.end()) return it->second;
        while (next_ < limit_ && used_.count(next_)) ++next_;
        if (next_ >= limit_) return -1;
        used_.insert(next_);
        return assigned_[name] = next_;
    }
    const std::map<std::string, uint32_t>& assigned() const { return assigned_; }

   private:
    const std::map<std::string, uint32_t>& previous_;
    uint32_t limit_;
    std::set<uint32_t> used_;  // every previous id, kept or quarantined, and every id given
    std::set<uint32_t> kept_;
    std::map<std::string, uint32_t> assigned_;
    uint32_t next_ = 0;
};

}  // namespace

namespace {

const char* family_name(int family) { return family == AF_INET6 ? "IPv6" : "IPv4"; }

// The backends of `subset` that take clients of `family`.
std::vector<size_t> backends_of_family(const SubsetSpec& subset, int family) {
    std::vector<size_t> out;
    for (size_t k = 0; k < subset.backends.size(); ++k)
        if (subset.backends[k].family == family) out.push_back(k);
    return out;
}

// 1e-6 -> "0.0001%": enough digits to show a share below one slot.
std::string percent_of(double fraction) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.4g%%", fraction * 100);
    return buf;
}

std::string joined(const std::vector<Endpoint>& endpoints) {
    std::string s;
    for (const auto& e : endpoints) s += (s.empty() ? "" : ", ") + e.str();
    return s;
}

// Refuses a frontend family that a weighted subset cannot serve: its clients would be reset,
// or its share would silently go to the other subsets.
Result<void> check_family(const ServiceSpec& s, int family, const Endpoint& frontend) {
    bool any = false;
    std::vector<Endpoint> all;
    for (const auto& subset : s.subsets) {
        any = any || !backends_of_family(subset, family).empty();
        all.insert(all.end(), subset.backends.begin(), subset.backends.end());
    }
    for (const auto& subset : s.subsets) {
        if (subset.weight == 0 || subset.backends.empty() || !backends_of_family(subset, family).empty()) continue;
        const std::string other = family == AF_INET6 ? "IPv4" : "IPv6";
        return fail(config_error(
            subset.where.str() + ": service \"" + s.name + "\": frontend " + frontend.str() + " takes " +
            family_name(family) + " clients, but " +
            (any ? "subset \"" + subset.name + "\" (weight " + std::to_string(subset.weight) + ") has only " + other +
                       " backends (" + joined(subset.backends) + "), so its share cannot hold for them"
                 : "every backend of the service is " + other + " (" + joined(all) + ")") +
            "; add " + family_name(family) + " backend addresses (one dual-stack listener on [::]:PORT serves " +
            "127.0.0.1:PORT and [::1]:PORT alike) or remove the frontend"));
    }
    return {};
}

// A ROUND_ROBIN table: one cycle in which each subset takes turns by weight and its backends of
// the family take the subset's turns in rotation.
Result<FamilyTable> compile_round_robin(const PlanService& ps, int family, const PlanLimits& limits,
                                        FamilyTable table) {
    std::vector<RoundRobinGroup> groups;
    for (const auto& subset : ps.subsets) {
        RoundRobinGroup g{.weight = subset.weight};
        for (const auto& b : subset.backends)
            if (b.address.family == family && b.share > 0) g.ids.push_back(static_cast<uint16_t>(b.id));
        groups.push_back(std::move(g));
    }
    table.slots = build_round_robin(groups, limits.table_slots);
    for (size_t k = 0; k < groups.size(); ++k)
        if (!groups[k].ids.empty() && std::find(table.slots.begin(), table.slots.end(), groups[k].ids.front()) ==
                                          table.slots.end())
            return fail(config_error(ps.where.str() + ": service \"" + ps.name + "\": subset \"" + ps.subsets[k].name +
                                     "\" would take less than one turn in a round-robin cycle of " +
                                     std::to_string(limits.table_slots) + " for " + family_name(family) +
                                     " clients; raise its weight or set it to 0"));
    return table;
}

// The table of one client family: each subset's share spread over its backends of that family.
Result<FamilyTable> compile_table(const PlanService& ps, int family, const PlanLimits& limits) {
    FamilyTable table;
    std::vector<WeightedBackend> weighted;
    for (const auto& subset : ps.subsets) {
        const auto first = static_cast<uint16_t>(table.weighted_backends.size());
        for (const auto& b : subset.backends)
            if (b.address.family == family && b.share > 0) {
                weighted.push_back(WeightedBackend{.id = static_cast<uint16_t>(b.id), .name = b.address.str(), .weight = b.share});
                table.weighted_backends.push_back(static_cast<uint16_t>(b.id));
            }
        const auto size = static_cast<uint16_t>(table.weighted_backends.size() - first);
        table.group_first.insert(table.group_first.end(), size, first);
        table.group_size.insert(table.group_size.end(), size, size);
    }
    if (ps.balance.mode == Balance::kRoundRobin) return compile_round_robin(ps, family, limits, std::move(table));
    const uint32_t size = ps.balance.table_size ? std::min(ps.balance.table_size, limits.table_slots) : limits.table_slots;
    const auto quotas = slot_quotas(weighted, size);
    for (size_t i = 0; i < weighted.size(); ++i)
        if (quotas[i] == 0)
            return fail(config_error(ps.where.str() + ": service \"" + ps.name + "\": backend " + weighted[i].name +
                                     " would take " + percent_of(weighted[i].weight) + " of the " +
                                     family_name(family) + " clients, less than one slot of " + std::to_string(size) +
                                     "; raise its subset's weight or set it to 0" +
                                     (size < limits.table_slots ? ", or raise the table size" : "")));
    table.slots = build_weight_table(weighted, size, TS_NO_BACKEND);
    return table;
}

// Whether a family's table of `a` is built from the same inputs as that of `b`: then it is the
// same table, since building one is deterministic.
bool same_table_inputs(const PlanService& a, const PlanService& b, int family) {
    if (a.balance.mode != b.balance.mode || a.balance.table_size != b.balance.table_size ||
        a.subsets.size() != b.subsets.size())
        return false;
    const auto of_family = [family](const PlanSubset& subset) {
        std::vector<const PlanBackend*> out;
        for (const auto& backend : subset.backends)
            if (backend.address.family == family) out.push_back(&backend);
        return out;
    };
    for (size_t i = 0; i < a.subsets.size(); ++i) {
        if (a.subsets[i].weight != b.subsets[i].weight) return false;
        const auto x = of_family(a.subsets[i]), y = of_family(b.subsets[i]);
        if (x.size() != y.size()) return false;
        for (size_t k = 0; k < x.size(); ++k)
            if (x[k]->id != y[k]->id || x[k]->address != y[k]->address || x[k]->share != y[k]->share) return false;
    }
    return true;
}

// One service: ids, subsets with each backend's share within its family, and the tables.
Result<PlanService> compile_service(const ServiceSpec& s, IdAllocator& service_ids, IdAllocator& backend_ids,
                                    const PlanLimits& limits, const PlanService* reuse) {
    PlanService ps{
        .name = s.name,
        .id = static_cast<uint32_t>(service_ids.id(s.name)),
        .affinity = s.affinity,
        .takeover = s.takeover,
        .frontends = s.listen,
        .frontends_where = s.listen_where,
        .affinity_where = s.affinity_where,
        .local_addresses = s.local_addresses,
        .where = s.where,
        .origin = s.origin,
        .outlier = s.outlier,
        .balance = s.balance,
        .keepalive = s.keepalive,
        .cap = s.cap,
        .lifetime = s.lifetime,
        .rebalance = s.rebalance,
    };
    uint64_t total = 0;
    size_t backend_count = 0;
    for (const auto& subset : s.subsets) {
        total += subset.weight;
        backend_count += subset.backends.size();
    }
    if (backend_count > limits.max_service_backends)
        return fail(config_error(s.where.str() + ": service \"" + s.name + "\" has " + std::to_string(backend_count) +
                                 " backends; a service holds at most " + std::to_string(limits.max_service_backends)));
    for (const auto& subset : s.subsets) {
        PlanSubset p{.name = subset.name,
                     .weight = subset.weight,
                     .share = total ? static_cast<double>(subset.weight) / total : 0,
                     .where = subset.where,
                     .weight_where = subset.weight_where,
                     .weight_path = subset.weight_path};
        for (size_t k = 0; k < subset.backends.size(); ++k) {
            const Endpoint& b = subset.backends[k];
            const int64_t id = backend_ids.id(b.str());
            if (id < 0)
                return fail(config_error(subset.where.str() + ": backend " + b.str() +
                                         ": a network namespace holds at most " + std::to_string(limits.max_backends) +
                                         " backends"));
            p.backends.push_back(PlanBackend{
                .id = static_cast<uint32_t>(id),
                .address = b,
                .share = p.share / backends_of_family(subset, b.family).size(),
                .where = k < subset.backend_where.size() ? subset.backend_where[k] : subset.where});
        }
        ps.subsets.push_back(std::move(p));
    }
    for (int family : {AF_INET, AF_INET6}) {
        auto frontend = std::find_if(s.listen.begin(), s.listen.end(), [&](const Endpoint& e) { return e.family == family; });
        if (frontend == s.listen.end()) continue;
        if (auto ok = check_family(s, family, *frontend); !ok) return fail(ok.error());
        // A table read back from the plan cache is taken over without its slots: fill_slots()
        // builds them if it is written after all.
        if (reuse && reuse->tables[family_index(family)].has_slots() && same_table_inputs(ps, *reuse, family)) {
            ps.tables[family_index(family)] = reuse->tables[family_index(family)];
            continue;
        }
        auto table = compile_table(ps, family, limits);
        if (!table) return fail(table.error());
        ps.tables[family_index(family)] = std::move(*table);
    }
    return ps;
}

}  // namespace

Result<Plan> compile_plan(const std::vector<ServiceSpec>& services, const IdAssignment& previous,
                          const PlanLimits& limits, const Plan* reuse) {
    if (services.size() > limits.max_services)
        return fail(config_error("the configuration has " + std::to_string(services.size()) +
                                 " services; a network namespace holds at most " +
                                 std::to_string(limits.max_services) +
                                 " as its maps are sized; `tcpshift attach --max-services N` sizes them for more "
                                 "before the first apply (detach first when attached)"));
    size_t frontend_count = 0;
    for (const auto& s : services) frontend_count += s.listen.size();
    if (frontend_count > limits.max_frontends)
        return fail(config_error("the configuration has " + std::to_string(frontend_count) +
                                 " frontends; a network namespace holds at most " +
                                 std::to_string(limits.max_frontends)));

    IdAllocator service_ids(previous.services, limits.max_services);
    // Backend id TS_NO_BACKEND marks an empty slot, so it is never handed out.
    IdAllocator backend_ids(previous.backends, std::min<uint32_t>(limits.max_backends, TS_NO_BACKEND));
    for (const auto& s : services) {
        service_ids.keep(s.name);
        for (const auto& subset : s.subsets)
            for (const auto& b : subset.backends) backend_ids.keep(b.str());
    }

    std::map<std::string_view, const PlanService*> reusable;
    if (reuse)
        for (const auto& svc : reuse->services) reusable.emplace(svc.name, &svc);
    Plan plan;
    plan.services.reserve(services.size());
    for (const auto& s : services) {
        const auto it = reusable.find(s.name);
        auto ps = compile_service(s, service_ids, backend_ids, limits, it == reusable.end() ? nullptr : it->second);
        if (!ps) return fail(ps.error());
        plan.services.push_back(std::move(*ps));
    }
    size_t routes = 0;
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets) routes += subset.backends.size();
    if (routes > limits.max_routes)
        return fail(config_error("the configuration has " + std::to_string(routes) +
                                 " (service, backend) pairs; a network namespace counts at most " +
                                 std::to_string(limits.max_routes)));
    plan.ids.services = service_ids.assigned();
    plan.ids.backends = backend_ids.assigned();
    return plan;
}

Result<void> fill_slots(PlanService& service, const PlanLimits& limits) {
    for (int family : {AF_INET, AF_INET6}) {
        FamilyTable& t = service.tables[family_index(family)];
        if (!t.elided()) continue;
        auto table = compile_table(service, family, limits);
        if (!table) return fail(table.error());
        if (table->slots.size() != t.elided_slots || table->weighted_backends != t.weighted_backends)
            return fail(system_error("service " + service.name + ": its " + family_name(family) +
                                     " table built again differs from the one compiled with it; `tcpshift verify` "
                                     "compares the kernel's tables with the applied set"));
        t = std::move(*table);
    }
    return {};
}

uint32_t backend_cap(const Plan& plan, uint32_t backend_id) {
    uint32_t cap = 0;
    for (const auto& svc : plan.services) {
        if (!svc.cap.max_connections) continue;
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends)
                if (b.id == backend_id && (!cap || svc.cap.max_connections < cap)) cap = svc.cap.max_connections;
    }
    return cap;
}

ServicePaths service_paths(const PlanService& service) {
    ServicePaths paths;
    for (const auto& subset : service.subsets)
        for (const auto& b : subset.backends) {
            if (b.share <= 0) continue;
            (b.remote ? paths.connect_time : paths.socket) = true;
        }
    return paths;
}

bool reached_remotely(const Endpoint& address, const std::function<bool(const Endpoint&)>& is_local) {
    return !address.is_wildcard() && !is_local(address);
}

void mark_remote_backends(Plan& plan, const std::function<bool(const Endpoint&)>& is_local) {
    for (auto& svc : plan.services)
        for (auto& subset : svc.subsets)
            for (auto& b : subset.backends) b.remote = reached_remotely(b.address, is_local);
}

}  // namespace tcpshift
