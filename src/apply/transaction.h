// The one way the applied set of a namespace changes. `apply`, `delete`, `set` and the agent
// each describe their change as an edit of the applied set; the transaction compiles it,
// installs it over what is applied (attaching first if needed), adds and removes local routes,
// adopts listeners and stores the set. When a step fails, the previous configuration is
// installed again, so it keeps serving. It reports what it does as data; only the CLI and the
// agent turn that into text.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "apply/state.h"
#include "compile/plan.h"
#include "config/config.h"
#include "dataplane/handle.h"

namespace tcpshift {

// One thing the transaction did or noticed.
struct Event {
    enum class Kind {
        kNote,     // from reading the configuration: documents skipped
        kWarning,  // something the user should look at; the change went on
        kStep,     // a step taken: attached, a route added, a listener adopted, installed
    };
    Kind kind;
    std::string text;
};
using Progress = std::function<void(const Event&)>;

// The applied set and the plan it compiles to, as stored for an attached namespace (empty
// when nothing is attached).
struct Applied {
    AppliedState state;
    std::vector<Resource> resources;  // state's documents, parsed
    Plan plan;
    PlanLimits limits = default_limits();  // what the attached maps hold

    ParsedSet parsed() const { return ParsedSet{state, resources}; }
};
// kCache: the plan is read from the plan cache when that holds the applied set's (its tables
// without slots, see fill_slots()); kCompile: compiled from the stored documents, as verify
// wants it.
enum class PlanSource { kCache, kCompile };
Result<Applied> load_applied(Dataplane& dataplane, PlanSource source = PlanSource::kCache);
// The same for a verb that only shows the plan: no resources are parsed when the plan cache
// holds the plan of the set the pinned maps hold. Its state then carries no documents, so it is
// never the base of an edit (run_transaction() loads its own).
Result<Applied> load_applied_plan(Dataplane& dataplane);

// Resolves and compiles resources with the ids they had. Runs in the target namespace: a
// backend that no address of it holds is marked remote (served by connect-time steering).
// `reuse`: a plan whose unchanged weight tables are taken over (see compile_plan).
Result<Plan> compile_resources(const std::vector<Resource>& resources, const IdAssignment& ids,
                               Diagnostics* diag = nullptr, const PlanLimits& limits = default_limits(),
                               const Plan* reuse = nullptr);

// A verb's change: the next set, made from the applied one.
using Edit = std::function<Result<NextSet>(const Applied& before)>;

struct TransactionOptions {
    bool dry_run = false;                // compile only; the handle may be shared
    // What reading the files found; compiling adds to it. Reported as events once the next set
    // compiles, and then cleared.
    Diagnostics* diagnostics = nullptr;
    std::string unresolved;              // put before the error when the next set does not compile
};

struct Outcome {
    Plan plan;             // installed now; on a dry run, what would be
    bool changed = false;  // false on a dry run, or when the edit found nothing to change
};

Result<Outcome> run_transaction(Dataplane& dataplane, const Edit& edit, const TransactionOptions& options,
                                const Progress& progress);

// Removes the local routes tcpshift added, then the programs, pins and state. Exclusive
// handles only.
Result<void> detach_namespace(Dataplane& dataplane, const Progress& progress);

}  // namespace tcpshift
