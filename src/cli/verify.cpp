// tcpshift verify: does the kernel hold what was applied, and what the namespace's agent
// keeps applied? Exits 1 on any difference.
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "apply/agent_lock.h"
#include "apply/session.h"
#include "cli/verbs.h"

namespace tcpshift {

namespace {

struct VerifyCommand {
    TargetOptions target;
    std::vector<std::string> files;  // empty: the applied set
    std::string ns = "default";
    bool json = false;
};

// What differs between the pinned maps and `expected`.
Result<std::vector<std::string>> dataplane_differences(Dataplane& dataplane, const Plan& expected) {
    if (!dataplane.attached()) {
        if (expected.services.empty()) return std::vector<std::string>{};
        return std::vector<std::string>{"tcpshift is not attached to this network namespace"};
    }
    auto maps = dataplane.maps();
    if (!maps) return fail(maps.error());
    return diff_dataplane(**maps, expected, dataplane.netns());
}

// What differs between the pinned maps and the config of the namespace's agent, each named
// after the agent. A config that does not load is a difference: the agent keeps serving the
// one before it.
Result<std::vector<std::string>> agent_differences(Dataplane& dataplane, const Applied& applied,
                                                   const AgentClaim& agent) {
    const std::string prefix = "the agent's config (" + agent.str() + "): ";
    Diagnostics diag{.strict = agent.strict};
    auto resources = load_resources(agent.config, agent.ns, &diag);
    auto plan = resources ? compile_resources(*resources, applied.state.ids, &diag, applied.limits)
                          : Result<Plan>(fail(resources.error()));
    if (!plan)
        return std::vector<std::string>{prefix + "does not load, so the agent serves the config before it: " +
                                        plan.error().message};
    auto differences = dataplane_differences(dataplane, *plan);
    if (!differences) return fail(differences.error());
    for (auto& d : *differences) d = prefix + d;
    return differences;
}

void print_verdict(const VerifyCommand& cmd, const Plan& expected, const std::optional<AgentClaim>& agent,
                   const std::vector<std::string>& differences, std::ostream& out) {
    if (cmd.json) {
        nlohmann::json j{{"in_sync", differences.empty()}, {"differences", differences}, {"agent", nullptr}};
        if (agent) j["agent"] = {{"pid", agent->pid}, {"config", agent->config}};
        out << j.dump(2) << "\n";
    } else if (differences.empty()) {
        out << "in sync: the pinned state matches " << (cmd.files.empty() ? "the applied set" : "the config")
            << (agent ? " and the agent's config (" + agent->str() + ")" : "") << " (" << expected.services.size()
            << " services)\n";
    } else {
        for (const auto& d : differences) out << "differs: " << d << "\n";
    }
}

// The plan the namespace should hold: the applied set's, or the given files'.
Result<Plan> expected_plan(const VerifyCommand& cmd, const Applied& applied) {
    if (cmd.files.empty()) return applied.plan;
    Diagnostics diag;
    auto resources = load_resources(cmd.files, cmd.ns, &diag);
    if (!resources) return fail(resources.error());
    return compile_resources(*resources, applied.state.ids, &diag, applied.limits);
}

Result<void> run_verify(const VerifyCommand& cmd, Streams io) {
    auto dataplane = open_session("verify", cmd.target, Access::kRead, print_progress(io.err));
    if (!dataplane) return fail(dataplane.error());
    // Compiled again: verify checks the kernel against the stored set, not against a cache of it.
    auto applied = load_applied(*dataplane, PlanSource::kCompile);
    if (!applied) return fail(applied.error());
    auto expected = expected_plan(cmd, *applied);
    if (!expected) return fail(expected.error());
    auto differences = dataplane_differences(*dataplane, *expected);
    if (!differences) return fail(differences.error());
    // Without files, what the namespace should hold is also what its agent keeps applied.
    std::optional<AgentClaim> agent;
    if (cmd.files.empty()) {
        auto running = running_agent(agent_lock_path(dataplane->netns().inode));
        if (!running) return fail(running.error());
        agent = std::move(*running);
    }
    if (agent) {
        auto drift = agent_differences(*dataplane, *applied, *agent);
        if (!drift) return fail(drift.error());
        differences->insert(differences->end(), drift->begin(), drift->end());
    }
    print_verdict(cmd, *expected, agent, *differences, io.out);
    if (!differences->empty())
        return fail(system_error("verify: " + std::to_string(differences->size()) +
                                 " difference(s) between the pinned state and the configuration"));
    return {};
}

}  // namespace

Action add_verify(CLI::App& command) {
    auto cmd = std::make_shared<VerifyCommand>();
    command.add_option("-f,--filename", cmd->files, "compare with this config instead of the applied set");
    add_namespace_option(command, cmd->ns, "namespace for documents that name none");
    add_json_flag(command, cmd->json);
    add_netns_option(command, cmd->target);
    return [cmd](Streams io) { return run_verify(*cmd, io); };
}

}  // namespace tcpshift
