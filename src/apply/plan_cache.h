// The compiled plan kept beside the applied set, so that a verb that only reads (status, stats)
// does not parse every stored document and compile it again. It is written, before the applied
// set, with the serial that set will have; read back, it stands for the set the pinned maps
// hold only while their serial is the same. Weight tables are kept without their slots (a plan
// read back can be shown, not installed or verified).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "compile/plan.h"

namespace tcpshift {

inline constexpr const char* kPlanCacheFileName = "plan.bin";

// Which applied set a plan is of: its serial, within one attach of the namespace.
struct PlanKey {
    uint64_t serial = 0;
    uint32_t attachment = 0;  // attachment_id(): the serial starts again after a detach

    bool operator==(const PlanKey&) const = default;
};

struct CachedPlan {
    PlanKey key;                         // of the applied set it was compiled from
    Plan plan;
    std::vector<Endpoint> local_routes;  // the local routes tcpshift owned with that set
};

// Writes the plan of applied set `key` to a temporary file and renames it over the old one.
Result<void> save_plan_cache_at(const std::string& dir, PlanKey key, const Plan& plan,
                                const std::vector<Endpoint>& local_routes);
Result<void> save_plan_cache(uint64_t netns_inode, PlanKey key, const Plan& plan,
                             const std::vector<Endpoint>& local_routes);

// The plan of applied set `key`; nothing when the file is absent, not a regular file,
// unreadable, of another format or of another set: the caller compiles the set instead.
std::optional<CachedPlan> load_plan_cache_at(const std::string& dir, PlanKey key);
std::optional<CachedPlan> load_plan_cache(uint64_t netns_inode, PlanKey key);

}  // namespace tcpshift
