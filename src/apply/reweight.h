// A change of a service's subset weights, made where the service's resource keeps them, so
// a later apply or get sees them too: what `tcpshift set` and a rollout's steps install.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "apply/transaction.h"
#include "base/netns.h"

namespace tcpshift {

// The applied service named `name`; the error lists the applied ones.
Result<const PlanService*> applied_service(const Applied& before, const std::string& name, const NetnsId& netns);
// The applied set with the service's resource carrying `weights` (subset -> weight); subsets
// left out keep theirs. An unknown service or subset is refused.
Result<NextSet> reweighted(const Applied& before, const std::string& service,
                           const std::map<std::string, uint32_t>& weights, const NetnsId& netns);

}  // namespace tcpshift
