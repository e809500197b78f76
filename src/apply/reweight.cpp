#include "apply/reweight.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/edit.h"

namespace tcpshift {

namespace {

// Edits (insertions, deletions, substitutions) that turn `a` into `b`.
size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = above;
        }
    }
    return row[b.size()];
}

// The applied names a mistyped `name` most likely meant: all of them when there are few, else
// the nearest few and how many there are.
std::string known_services(const Plan& plan, const std::string& name) {
    constexpr size_t kListed = 8;
    std::vector<std::pair<size_t, std::string_view>> names;
    for (const auto& s : plan.services) names.emplace_back(edit_distance(name, s.name), s.name);
    if (names.empty()) return "; apply one first";
    const bool all = names.size() <= kListed;
    if (!all) {
        std::partial_sort(names.begin(), names.begin() + kListed, names.end());
        names.resize(kListed);
    }
    std::string known;
    for (const auto& [distance, n] : names) known += (known.empty() ? "" : ", ") + std::string(n);
    if (all) return "; applied: " + known;
    return "; the nearest of the " + std::to_string(plan.services.size()) + " applied: " + known +
           " (tcpshift status lists them all)";
}

}  // namespace

Result<const PlanService*> applied_service(const Applied& before, const std::string& name, const NetnsId& netns) {
    if (const PlanService* svc = before.plan.find_service(name)) return svc;
    return fail(config_error("no service \"" + name + "\" is applied in network namespace " +
                             std::to_string(netns.inode) + known_services(before.plan, name)));
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
