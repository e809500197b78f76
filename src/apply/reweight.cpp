#include "apply/reweight.h"

#include "config/edit.h"

namespace tcpshift {

Result<const PlanService*> applied_service(const Applied& before, const std::string& name, const NetnsId& netns) {
    if (const PlanService* svc = before.plan.find_service(name)) return svc;
    std::string known;
    for (const auto& s : before.plan.services) known += (known.empty() ? "" : ", ") + s.name;
    return fail(config_error("no service \"" + name + "\" is applied in network namespace " +
                             std::to_string(netns.inode) +
                             (known.empty() ? "; apply one first" : "; applied: " + known)));
}

namespace {

Result<const PlanSubset*> subset_of(const PlanService& svc, const std::string& name) {
    for (const auto& subset : svc.subsets)
        if (subset.name == name) return &subset;
    std::string known;
    for (const auto& subset : svc.subsets) known += (known.empty() ? "" : ", ") + subset.name;
    return fail(config_error("service \"" + svc.name + "\" has no subset \"" + name + "\"; its subsets: " + known));
}

}  // namespace

Result<NextSet> reweighted(const Applied& before, const std::string& service,
                           const std::map<std::string, uint32_t>& weights, const NetnsId& netns) {
    auto svc = applied_service(before, service, netns);
    if (!svc) return fail(svc.error());
    std::map<std::string, const PlanSubset*> subsets;
    for (const auto& [name, weight] : weights) {
        auto subset = subset_of(**svc, name);
        if (!subset) return fail(subset.error());
        subsets[name] = *subset;
    }
    // The applied set parsed already, or parsed here for a caller that gave only the state.
    std::vector<Resource> parsed;
    if (before.resources.size() != before.state.resources.size()) {
        auto read = stored_resources(before.state);
        if (!read) return fail(read.error());
        parsed = std::move(*read);
    }
    const std::vector<Resource>& resources = parsed.empty() ? before.resources : parsed;
    std::vector<Resource> changed;
    for (const auto& stored : resources) {
        if (stored.key() != (*svc)->origin) continue;
        // A YAML node shares its tree with its copies, and assigning to one writes through to
        // the tree: reset() points this one at a clone, so the applied set stays as it was.
        Resource r = stored;
        r.node.reset(YAML::Clone(stored.node));
        for (const auto& [name, weight] : weights)
            if (auto ok = set_weight(r, subsets[name]->weight_path, weight); !ok) return fail(ok.error());
        changed.push_back(std::move(r));
    }
    return with_resources(ParsedSet{before.state, resources}, changed, "tcpshift set");
}

}  // namespace tcpshift
