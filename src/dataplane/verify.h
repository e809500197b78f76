// Comparing what the kernel's maps hold with what a plan says they should hold.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "base/netns.h"
#include "compile/plan.h"
#include "dataplane/maps.h"

namespace tcpshift {

// What the maps hold that `plan` does not say, and the reverse, one line per difference:
// frontends, live tables (affinity, fallback order, slots), listener keys, and SOCKHASH
// members that do not serve their backend's address. The calling thread must be in the
// namespace `netns` (see backend_sockets()).
Result<std::vector<std::string>> diff_dataplane(const DataplaneMaps& maps, const Plan& plan, const NetnsId& netns);

}  // namespace tcpshift
