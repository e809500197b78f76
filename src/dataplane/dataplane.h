// The BPF side of one network namespace: loading, pinning, attaching, writing plans, detaching.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/netns.h"
#include "bpf/abi.h"
#include "compile/plan.h"

struct steer_bpf;

namespace tcpshift {

// The pinned maps of an attached namespace, one member for each of TS_PINNED_MAPS (bpf/abi.h),
// by the names they have in the BPF object and under the pin directory.
struct DataplaneMaps {
#define TS_MAP_MEMBER(name) Fd name;
    TS_PINNED_MAPS(TS_MAP_MEMBER)
#undef TS_MAP_MEMBER
};

// Every pinned map with its name, built from TS_PINNED_MAPS: the one list that pinning,
// opening and granting walk.
struct MapName {
    const char* name;
    Fd DataplaneMaps::*fd;
};
inline constexpr auto kDataplaneMaps = std::to_array<MapName>({
#define TS_MAP_NAME(name) {#name, &DataplaneMaps::name},
    TS_PINNED_MAPS(TS_MAP_NAME)
#undef TS_MAP_NAME
});

struct SteerBpfDeleter {
    void operator()(steer_bpf* skel) const;
};

// The programs and maps of bpf/steer.bpf.c, loaded into the kernel but attached nowhere.
// The BPF tests run it directly; attach_dataplane() pins and attaches it.
class SteerProgram {
   public:
    // sock_ops looks only at sockets of the namespace whose cookie is `netns_cookie`.
    // `max_services` sizes the per-service maps (0: TS_MAX_SERVICES); see attach --max-services.
    static Result<SteerProgram> load(uint64_t hash_seed, uint64_t netns_cookie, uint32_t max_services = 0);

    int steer_fd() const;
    int register_and_count_fd() const;
    Result<DataplaneMaps> maps() const;  // duplicated fds, independent of this object
    steer_bpf* skeleton() const { return skel_.get(); }

   private:
    std::unique_ptr<steer_bpf, SteerBpfDeleter> skel_;
};

struct AttachOptions {
    std::string cgroup;         // empty: the root of the cgroup2 hierarchy
    uint32_t max_services = 0;  // 0: TS_MAX_SERVICES
};

// The most services attach --max-services allows: the weight tables alone take
// 2 x 8.7 KB a service, 285 MB at this size.
inline constexpr uint32_t kMaxServicesCeiling = 16384;

// What is attached to the current network namespace. Callers hold the PinLock for every
// state-changing call.
bool dataplane_attached(const NetnsId& netns);
// Whether the pins of namespace `inode` still serve it: its sk_lookup link is attached to a
// live namespace with that inode. False once the namespace is deleted.
bool dataplane_alive(uint64_t inode);
// Loads, attaches and pins the data plane unless it is already attached. Returns true when it
// attached now. Stale pins of an earlier namespace with the same inode are removed first.
Result<bool> attach_dataplane(const NetnsId& netns, const AttachOptions& options);
// Opens the pinned maps; refuses pins of another ABI version, naming the fix.
Result<DataplaneMaps> open_dataplane(const NetnsId& netns);
// The serial of the applied set the maps hold (0: none yet), and recording a new one.
Result<uint64_t> applied_serial(const DataplaneMaps& maps);
Result<void> set_applied_serial(const DataplaneMaps& maps, uint64_t serial);
// The limits the attached maps were sized for (default_limits() when nothing is attached).
Result<PlanLimits> attached_limits(const NetnsId& netns);
// Removes links, pins and stored state; the programs leave the kernel with their last reference.
Result<void> detach_dataplane(const NetnsId& netns);
// Lets members of `gid` read the maps of an attached namespace (bpftool, a metrics scraper):
// its directory becomes 0750 and every map pin 0640, group `gid`. The links stay 0600 root,
// since holding one is enough to detach. The pin root becomes 0711, so the group can reach
// its namespace without listing the others. gid 0 takes the access back.
Result<void> grant_pin_group(const NetnsId& netns, unsigned gid);

// The backends a listening socket serves, by client family: [0] for IPv4 connections, [1] for
// IPv6 ones; TS_NO_BACKEND for none (ts_listener).
using ListenerIds = std::array<uint32_t, 2>;
// A listener of one backend, at `address`, serving clients of its family.
ListenerIds serving(uint32_t backend_id, const Endpoint& address);

// The listener keys of a plan: which (address, port) a listening socket must have to be a
// backend. A backend is also found by a wildcard listener of its port (0.0.0.0 for an IPv4
// backend; [::] for an IPv6 one, and for an IPv4 one, since a dual-stack listener takes IPv4
// too) when no other backend of the same family shares that wildcard. So one dual-stack
// listener on [::]:P serves both 127.0.0.1:P and [::1]:P.
std::vector<std::pair<Endpoint, ListenerIds>> listener_keys(const Plan& plan);

// Prepares the maps for the backend ids of `next`, given that they hold `previous` (nullptr:
// nothing yet): an id that is new to its address gets that address's tag and loses any
// socket and counter it had; then writes the listener keys, so that sock_ops registers the
// backends as they start listening. Callers adopt the listeners that already exist after it
// (adopt_listeners), then call install_plan().
Result<void> install_listener_keys(const DataplaneMaps& maps, const Plan& next, const Plan* previous,
                                   const NetnsId& netns);

// Makes the maps hold `next`, given that they hold `previous` (nullptr: nothing yet) and that
// install_listener_keys() ran for `next`. New tables go in before the frontends that use
// them; removals go last. Each table is written into the spare generation and made live by
// one 4-byte write.
Result<void> install_plan(const DataplaneMaps& maps, const Plan& next, const Plan* previous, const NetnsId& netns);

// The fingerprint sock_ops keeps with a backend's listeners (ts_backend_tag).
uint32_t backend_tag(const Endpoint& address);

// What the maps hold that `plan` does not say, and the reverse, one line per difference:
// frontends, live tables (affinity, fallback order, slots) and listener keys.
Result<std::vector<std::string>> diff_dataplane(const DataplaneMaps& maps, const Plan& plan, const NetnsId& netns);

// One listener the SOCKHASH holds for a backend, as the kernel lists it.
struct BackendSocket {
    uint64_t cookie = 0;
    std::optional<Endpoint> listening_on;  // empty: no listening socket of the namespace has the cookie
    bool serves = false;                   // a connection to the backend's address would reach it
};
// What the SOCKHASH holds for each backend of `plan`, by id, each socket named by the
// kernel's list of listening sockets. The calling thread must be in the namespace `netns`.
Result<std::map<uint32_t, std::vector<BackendSocket>>> backend_sockets(const DataplaneMaps& maps, const Plan& plan,
                                                                       const NetnsId& netns);

// Backends with at least one listener in the SOCKHASH that serves their address.
Result<std::vector<uint32_t>> ready_backends(const DataplaneMaps& maps, const Plan& plan, const NetnsId& netns);

// "listener on 127.0.0.1:9003" or "socket 4711 that listens nowhere in this namespace".
std::string describe(const BackendSocket& socket);

// The socket cookies the SOCKHASH holds for a backend, one per registered group member.
Result<std::vector<uint64_t>> backend_socket_cookies(const DataplaneMaps& maps, uint32_t backend_id);

// Inserts an already listening socket as a member of the listeners of the backends it serves,
// and gives it the storage sock_ops would have given it, so its connections are accounted for.
Result<void> register_listener(const DataplaneMaps& maps, const ListenerIds& ids, int socket_fd);

struct ServiceCounters {
    uint64_t lookups = 0, fallbacks = 0, no_backend = 0;
};
struct BackendCounters {
    uint64_t steered = 0;         // new connections sk_lookup handed to its listener
    uint64_t opened = 0;          // connections it accepted, steered or direct
    uint64_t closed = 0;          // of those, closed
    uint64_t bytes_sent = 0;      // counted when a connection closes
    uint64_t bytes_received = 0;  // counted when a connection closes

    uint64_t active() const { return opened >= closed ? opened - closed : 0; }
};
// Sums the per-CPU counters.
Result<ServiceCounters> read_service_counters(const DataplaneMaps& maps, uint32_t service_id);
Result<BackendCounters> read_backend_counters(const DataplaneMaps& maps, uint32_t backend_id);
// The connections that reached a backend through one service's frontends.
Result<BackendCounters> read_route_counters(const DataplaneMaps& maps, uint32_t service_id, uint32_t backend_id);

}  // namespace tcpshift
