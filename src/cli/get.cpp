// tcpshift get: the applied resources, optionally of one kind.
#include <memory>
#include <nlohmann/json.hpp>

#include "apply/session.h"
#include "cli/verbs.h"
#include "report/report.h"

namespace tcpshift {

namespace {

struct GetCommand {
    TargetOptions target;
    std::string kind;  // empty: every kind
    bool json = false;
};

Result<void> run_get(const GetCommand& cmd, Streams io) {
    auto dataplane = open_session("get", cmd.target, Access::kRead, print_progress(io.err));
    if (!dataplane) return fail(dataplane.error());
    auto applied = load_applied(*dataplane);
    if (!applied) return fail(applied.error());
    nlohmann::json list = nlohmann::json::array();
    TextTable t;
    t.row({"KIND", "NAMESPACE", "NAME", "APPLIED FROM"});
    for (const auto& r : applied->state.resources) {
        if (!cmd.kind.empty() && !r.key.matches_kind(cmd.kind)) continue;
        const std::string kind = r.key.kind_group();
        list.push_back({{"kind", kind}, {"namespace", r.key.ns}, {"name", r.key.name}, {"source", r.source}});
        t.row({kind, r.key.ns, r.key.name, r.source});
    }
    if (cmd.json) {
        io.out << nlohmann::json{{"resources", list}}.dump(2) << "\n";
    } else if (list.empty()) {
        io.out << "no resources applied" << (cmd.kind.empty() ? "" : " of kind " + cmd.kind) << "\n";
    } else {
        t.print(io.out);
    }
    return {};
}

}  // namespace

Action add_get(CLI::App& command) {
    auto cmd = std::make_shared<GetCommand>();
    command.add_option("kind", cmd->kind, "kind, e.g. trafficshift, virtualservices, tcproute");
    add_json_flag(command, cmd->json);
    add_netns_option(command, cmd->target);
    return [cmd](Streams io) { return run_get(*cmd, io); };
}

}  // namespace tcpshift
