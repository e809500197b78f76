// tcpshift set: shift a service's weights, e.g. `set tcp-echo v1=20 v2=80`. The weights are
// rewritten where the service's resource keeps them, so a later apply or get sees them too.
#include <map>
#include <memory>

#include "apply/closing.h"
#include "apply/reweight.h"
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

Result<void> run_set(const SetCommand& cmd, Streams io) {
    std::map<std::string, uint32_t> weights;
    for (const auto& arg : cmd.weights) {
        auto assignment = parse_weight_assignment(arg);
        if (!assignment) return fail(assignment.error());
        if (!weights.emplace(assignment->first, assignment->second).second)
            return fail(config_error("set: subset \"" + assignment->first + "\" is given twice (" + arg +
                                     "); name each subset once"));
    }
    const Progress progress = print_progress(io.err);
    PlanService shifted;
    {
        auto dataplane = open_session("set", cmd.target, config_access(cmd.force), progress);
        if (!dataplane) return fail(dataplane.error());
        const NetnsId netns = dataplane->netns();
        const Edit edit = [&](const Applied& before) -> Result<NextSet> {
            auto next = reweighted(before, cmd.service, weights, netns);
            if (!next) return fail(config_error("set: " + next.error().message));
            return next;
        };
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
