#include "rollout/service_io.h"

#include "apply/reweight.h"
#include "report/metrics.h"

namespace tcpshift {

Result<Reading> read_service(const std::string& netns, const std::string& service) {
    auto dataplane = Dataplane::open(netns, Dataplane::Access::kUnlocked);
    if (!dataplane) return fail(dataplane.error());
    auto applied = load_applied(*dataplane);
    if (!applied) return fail(applied.error());
    auto svc = applied_service(*applied, service, dataplane->netns());
    if (!svc) return fail(svc.error());
    auto maps = dataplane->maps();
    if (!maps) return fail(maps.error());
    auto facts = collect_stats(**maps, applied->plan);
    if (!facts) return fail(facts.error());
    Reading reading{.figures = subset_figures(**svc, *facts)};
    for (const auto& subset : (*svc)->subsets) reading.weights[subset.name] = subset.weight;
    return reading;
}

Result<void> install_weights(Dataplane& dataplane, const std::string& service,
                             const std::map<std::string, uint32_t>& weights, const Progress& progress) {
    const NetnsId netns = dataplane.netns();
    const Edit edit = [&](const Applied& before) { return reweighted(before, service, weights, netns); };
    auto outcome = run_transaction(dataplane, edit, {}, progress);
    if (!outcome) return fail(outcome.error());
    return {};
}

}  // namespace tcpshift
