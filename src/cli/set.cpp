// tcpshift set: shift a service's weights, e.g. `set tcp-echo v1=20 v2=80`. The weights are
// rewritten where the service's resource keeps them, so a later apply or get sees them too.
#include <map>
#include <memory>

#include "apply/closing.h"
#include "apply/session.h"
#include "cli/rebalance_output.h"
#include "cli/verbs.h"
#include "config/edit.h"

namespace tcpshift {

namespace {

struct SetCommand {
    TargetOptions target;
    std::string service;
    std::vector<std::string> weights;  // SUBSET=WEIGHT
    bool force = false;                // beside an agent
};

Result<const PlanService*> applied_service(const Applied& before, const std::string& name, const NetnsId& netns) {
    if (const PlanService* svc = before.plan.find_service(name)) return svc;
    std::string known;
    for (const auto& s : before.plan.services) known += (known.empty() ? "" : ", ") + s.name;
    return fail(config_error("set: no service \"" + name + "\" is applied in network namespace " +
                             std::to_string(netns.inode) +
                             (known.empty() ? "; apply one first" : "; applied: " + known)));
}

Result<const PlanSubset*> subset_of(const PlanService& svc, const std::string& name) {
    for (const auto& subset : svc.subsets)
        if (subset.name == name) return &subset;
    std::string known;
    for (const auto& subset : svc.subsets) known += (known.empty() ? "" : ", ") + subset.name;
    return fail(config_error("set: service \"" + svc.name + "\" has no subset \"" + name + "\"; its subsets: " + known));
}

// The applied set with the service's resource carrying the new weights.
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
    auto resources = stored_resources(before.state);
    if (!resources) return fail(resources.error());
    std::vector<Resource> changed;
    for (auto& r : *resources) {
        if (r.key() != (*svc)->origin) continue;
        for (const auto& [name, weight] : weights)
            if (auto ok = set_weight(r, subsets[name]->weight_path, weight); !ok) return fail(ok.error());
        changed.push_back(r);
    }
    return with_resources(before.state, changed, "tcpshift set");
}

Result<void> run_set(const SetCommand& cmd, Streams io) {
    std::map<std::string, uint32_t> weights;
    for (const auto& arg : cmd.weights) {
        auto assignment = parse_weight_assignment(arg);
        if (!assignment) return fail(assignment.error());
        weights[assignment->first] = assignment->second;
    }
    const Progress progress = print_progress(io.err);
    PlanService shifted;
    {
        auto dataplane = open_session("set", cmd.target, config_access(cmd.force), progress);
        if (!dataplane) return fail(dataplane.error());
        const NetnsId netns = dataplane->netns();
        const Edit edit = [&](const Applied& before) { return reweighted(before, cmd.service, weights, netns); };
        auto outcome = run_transaction(*dataplane, edit, {}, progress);
        if (!outcome) return fail(outcome.error());
        shifted = *outcome->plan.find_service(cmd.service);
    }
    print_applied(Plan{.services = {shifted}}, io.out);
    if (!shifted.rebalance.enabled) return {};
    // The service's policy asks for its live connections to follow the new weights: the
    // closing runs after the pin lock is let go, so that it keeps no writer waiting.
    auto dataplane = Dataplane::open(cmd.target.netns, Dataplane::Access::kUnlocked);
    if (!dataplane) return fail(dataplane.error());
    const RebalanceOptions options{.rate = shifted.rebalance.rate, .max = shifted.rebalance.max};
    auto report = run_rebalance(*dataplane, shifted, options, [&](const std::string& line) {
        io.err << "rebalance " << shifted.name << ": " << line << "\n";
    });
    if (!report) return fail(report.error());
    print_rebalance(shifted.name, options, *report, io.out);
    return {};
}

}  // namespace

Action add_set(CLI::App& command) {
    auto cmd = std::make_shared<SetCommand>();
    command.add_option("service", cmd->service, "service name, as `status` shows it")->required();
    command.add_option("weights", cmd->weights, "SUBSET=WEIGHT pairs; unnamed subsets keep their weight")->required();
    add_force_option(command, cmd->force);
    add_netns_option(command, cmd->target);
    return [cmd](Streams io) { return run_set(*cmd, io); };
}

}  // namespace tcpshift
