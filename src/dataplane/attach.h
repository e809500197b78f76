// Attaching the data plane to a network namespace and finding it again through its pins.
// Callers hold the PinLock for every state-changing call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/netns.h"
#include "compile/plan.h"
#include "dataplane/maps.h"

namespace tcpshift {

struct AttachOptions {
    std::string cgroup;         // empty: the root of the cgroup2 hierarchy
    uint32_t max_services = 0;  // 0: TS_MAX_SERVICES
    // Cookies of the client namespaces connect-time steering serves; empty: every namespace
    // of the cgroup.
    std::vector<uint64_t> client_netns;
};

// The most services attach --max-services allows: the weight tables alone take
// 2 x 8.7 KB a service, 285 MB at this size.
inline constexpr uint32_t kMaxServicesCeiling = 16384;

// What is attached to the current network namespace.
bool dataplane_attached(const NetnsId& netns);
// Whether the pins of namespace `inode` still serve it: its sk_lookup link is attached to a
// live namespace with that inode. False once the namespace is deleted.
bool dataplane_alive(uint64_t inode);
// The cgroup programs pinned for namespace `inode` that are attached, and to which cgroup.
struct CgroupAttachment {
    uint64_t cgroup_id = 0;             // the cgroup2 directory's inode; 0: none attached
    std::vector<std::string> programs;  // "sock_ops", "connect4", "connect6", "getpeername4", ...
};
CgroupAttachment cgroup_attachment(uint64_t inode);

// Loads, attaches and pins the data plane unless it is already attached. Returns true when it
// attached now. Stale pins of an earlier namespace with the same inode are removed first.
Result<bool> attach_dataplane(const NetnsId& netns, const AttachOptions& options);
// Opens the pinned maps; refuses pins of another ABI version, naming the fix.
Result<DataplaneMaps> open_dataplane(const NetnsId& netns);
// What "meta" says of the applied sets: the one the maps hold (0: none yet), and the one a
// change is installing over it (0: none, or the change ended).
struct AppliedSerials {
    uint64_t applied = 0;
    uint64_t installing = 0;
};
Result<AppliedSerials> applied_serials(const DataplaneMaps& maps);
// Records that a change starts writing applied set `serial` into the maps.
Result<void> begin_installing(const DataplaneMaps& maps, uint64_t serial);
// Records that the maps hold applied set `serial`, and that no change is under way.
Result<void> set_applied_serial(const DataplaneMaps& maps, uint64_t serial);
// The kernel's id of the pinned "meta" map: another attach of the namespace, another id, while
// serials start again at 1.
Result<uint32_t> attachment_id(const DataplaneMaps& maps);
// The limits the attached maps were sized for (default_limits() when nothing is attached).
Result<PlanLimits> attached_limits(const NetnsId& netns);
// Removes links, pins and stored state; the programs leave the kernel with their last reference.
Result<void> detach_dataplane(const NetnsId& netns);
// The client namespaces connect-time steering is narrowed to, by netns cookie; empty: all.
Result<std::vector<uint64_t>> client_scope(const DataplaneMaps& maps);

// Lets members of `gid` read the maps of an attached namespace (bpftool, a metrics scraper):
// its directory becomes 0750 and every map pin 0640, group `gid`. The links stay 0600 root,
// since holding one is enough to detach. The pin root becomes 0711, so the group can reach
// its namespace without listing the others. gid 0 takes the access back.
Result<void> grant_pin_group(const NetnsId& netns, unsigned gid);

}  // namespace tcpshift
