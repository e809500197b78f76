// The compiled form of a configuration: what the maps of one network namespace must hold.
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "base/endpoint.h"

namespace tcpshift {

// The sizes of the maps a plan must fit in, read from the loaded object or bpf_abi.h.
struct PlanLimits {
    uint32_t max_services = 0;
    uint32_t max_service_backends = 0;
    uint32_t max_backends = 0;
    uint32_t max_frontends = 0;
    uint32_t max_routes = 0;  // (service, backend) pairs counted apart
    uint32_t table_slots = 0;
};
PlanLimits default_limits();

struct PlanBackend {
    uint32_t id = 0;
    Endpoint address;
    double share = 0;  // of its service's new connections from clients of its family, 0..1
    SourceRef where;   // the WorkloadEntry or the line that named it
    // No listener of the frontends' namespace serves it (another namespace or host): a client's
    // connect() is rewritten to it. Set by mark_remote_backends().
    bool remote = false;
};

struct PlanSubset {
    std::string name;
    uint32_t weight = 0;
    double share = 0;  // weight / sum of weights
    std::vector<PlanBackend> backends;
    SourceRef where;
    SourceRef weight_where;
    std::vector<std::string> weight_path;  // see SubsetSpec
};

// The weight table of one client family: what sk_lookup indexes with a flow hash.
struct FamilyTable {
    std::vector<uint16_t> weighted_backends;  // ids with a share > 0, fallback order, by subset
    // Parallel to weighted_backends: where the backend's subset starts in it, and its size
    // there (LEAST_CONN draws its second choice in the subset).
    std::vector<uint16_t> group_first, group_size;
    // slot -> backend id; empty: no frontend of the family. Its size is the table's slot
    // count: the Maglev table size of a hashing or RANDOM table, the cycle of a ROUND_ROBIN one.
    std::vector<uint16_t> slots;
    // A plan read back from the plan cache carries no slots, only how many there are: it can
    // be shown, not installed or verified.
    uint32_t elided_slots = 0;

    size_t slot_count() const { return slots.empty() ? elided_slots : slots.size(); }
    bool has_slots() const { return slot_count() > 0; }
    bool elided() const { return slots.empty() && elided_slots > 0; }
};
// Index into PlanService::tables of a client family (AF_INET or AF_INET6).
inline size_t family_index(int family) { return family == AF_INET6 ? 1 : 0; }

struct PlanService {
    std::string name;
    uint32_t id = 0;
    Affinity affinity = Affinity::kNone;
    bool takeover = false;
    std::vector<Endpoint> frontends;
    std::vector<SourceRef> frontends_where;  // parallel to frontends, when known
    SourceRef affinity_where;
    std::vector<Endpoint> local_addresses;   // virtual IPs that need a local route
    std::vector<PlanSubset> subsets;
    // The weight tables, one per client family: [0] IPv4 clients, [1] IPv6 clients. An
    // AF_INET listener takes IPv4 only, so each table holds the backends of its family, and
    // every subset keeps its weight within each family. A family with no frontend has an
    // empty table.
    std::array<FamilyTable, 2> tables;
    SourceRef where;
    ResourceKey origin;  // the resource whose weights these are
    OutlierPolicy outlier;
    BalancePolicy balance;
    KeepalivePolicy keepalive;
    ConnectionCap cap;
    LifetimePolicy lifetime;
    RebalancePolicy rebalance;
};

// Ids are stable across applies so that live listeners stay registered under the same key:
// a name or address keeps the id it had, new ones take the lowest free id.
struct IdAssignment {
    std::map<std::string, uint32_t> services;  // service name -> id
    std::map<std::string, uint32_t> backends;  // "127.0.0.1:9001" -> id
};

struct Plan {
    std::vector<PlanService> services;
    IdAssignment ids;

    const PlanService* find_service(const std::string& name) const;
    // Every virtual IP some service needs a local route for.
    std::vector<Endpoint> local_addresses() const;
};

// Which clients a service's frontends serve: a socket backend takes every client that reaches
// the frontend; a remote one only clients whose connect() runs in the attached cgroup.
struct ServicePaths {
    bool socket = false;        // some weighted backend listens in the namespace
    bool connect_time = false;  // some weighted backend is remote
};
ServicePaths service_paths(const PlanService& service);

// Whether a backend at `address` is reached by connect-time steering: `is_local` says no
// address of the namespace holds it (a wildcard one is always local).
bool reached_remotely(const Endpoint& address, const std::function<bool(const Endpoint&)>& is_local);
// Marks each backend that reached_remotely() says so as remote.
void mark_remote_backends(Plan& plan, const std::function<bool(const Endpoint&)>& is_local);

// Builds the slots of the tables of `service` that a plan read from the plan cache left out
// (FamilyTable::elided()), from the service's own weights, ids and policy.
Result<void> fill_slots(PlanService& service, const PlanLimits& limits);

// The cap a backend holds in the kernel: the smallest maxConnections of the services that
// name it; 0 when none caps it.
uint32_t backend_cap(const Plan& plan, uint32_t backend_id);

// Compiles validated services. Fails when the set does not fit the map sizes. A weight table
// whose inputs (policy, subsets' weights, backends' ids, addresses and shares) are those of the
// same service in `reuse` is taken from there, not built again: a change of one service of
// thousands builds one service's tables. One `reuse` holds without slots stays without them.
Result<Plan> compile_plan(const std::vector<ServiceSpec>& services, const IdAssignment& previous,
                          const PlanLimits& limits, const Plan* reuse = nullptr);

}  // namespace tcpshift
