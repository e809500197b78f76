// Applying a configuration to a network namespace: the steps `apply`, `set`, `delete` and
// the agent share. Callers hold the PinLock around load_applied() ... commit().
#pragma once

#include <ostream>
#include <vector>

#include "apply/target.h"
#include "config/config.h"
#include "base/netns.h"
#include "compile/plan.h"
#include "apply/state.h"

namespace tcpshift {

void print_diagnostics(const Diagnostics& diag, std::ostream& err);

// Resolves and compiles resources with the ids they had.
Result<Plan> compile_resources(const std::vector<Resource>& resources, const IdAssignment& ids,
                               Diagnostics* diag = nullptr, const PlanLimits& limits = default_limits());

// The applied set and the plan it compiles to, as stored for an attached namespace (empty
// when nothing is attached).
struct Applied {
    AppliedState state;
    Plan plan;
    PlanLimits limits = default_limits();  // what the attached maps hold
};
Result<Applied> load_applied(const NetnsId& netns);

// The applied resources with `incoming` added or replacing, in their original form so that
// errors name the file:line they were read from.
Result<std::vector<Resource>> merged_resources(const AppliedState& state, const std::vector<Resource>& incoming);

// Removes local routes tcpshift owns that `keep` does not need; returns the ones still owned.
std::vector<Endpoint> drop_local_routes(const std::vector<Endpoint>& owned, const Plan& keep, std::ostream& log);

// Installs `next` over what is applied (attaching first if needed), adds and removes local
// routes, adopts listeners and stores `next_state`. When anything fails, the previous plan is
// installed again (or the fresh attachment removed), so the old configuration keeps serving.
// Progress goes to `log`, one line per step.
Result<void> commit(const Target& target, const Applied& before, AppliedState next_state, const Plan& next,
                    std::ostream& log);

}  // namespace tcpshift
