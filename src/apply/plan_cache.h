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

struct CachedPlan {
    uint64_t serial = 0;                 // of the applied set it was compiled from
    Plan plan;
    std::vector<Endpoint> local_routes;  // the local routes tcpshift owned with that set
};

// Writes the plan of applied set #`serial` to a temporary file and renames it over the old one.
Result<void> save_plan_cache_at(const std::string& dir, uint64_t serial, const Plan& plan,
                                const std::vector<Endpoint>& local_routes);
Result<void> save_plan_cache(uint64_t netns_inode, uint64_t serial, const Plan& plan,
                             const std::vector<Endpoint>& local_routes);

// The plan of applied set #`serial`; nothing when the file is absent, unreadable, of another
// format or of another set: the caller compiles the set instead.
std::optional<CachedPlan> load_plan_cache_at(const std::string& dir, uint64_t serial);
std::optional<CachedPlan> load_plan_cache(uint64_t netns_inode, uint64_t serial);

}  // namespace tcpshift
