// tcpshift explain: what a config would route and where each value came from; offline, no
// root.
#include <memory>

#include "apply/transaction.h"
#include "cli/verbs.h"
#include "report/report.h"

namespace tcpshift {

namespace {

struct ExplainCommand {
    std::vector<std::string> files;
    std::string ns = "default";
    bool json = false;
    bool strict = false;
};

Result<void> run_explain(const ExplainCommand& cmd, Streams io) {
    Diagnostics diag{.strict = cmd.strict};
    auto resources = load_resources(cmd.files, cmd.ns, &diag);
    if (!resources) return fail(resources.error());
    auto plan = compile_resources(*resources, IdAssignment{}, &diag);
    if (!plan) return fail(plan.error());
    const Progress progress = print_progress(io.err);
    for (const auto& note : diag.notes) progress(Event{Event::Kind::kNote, note});
    for (const auto& warning : diag.warnings) progress(Event{Event::Kind::kWarning, warning});
    if (cmd.json) {
        io.out << explain_json(*plan).dump(2) << "\n";
    } else {
        print_explain(*plan, io.out);
    }
    return {};
}

}  // namespace

Action add_explain(CLI::App& command) {
    auto cmd = std::make_shared<ExplainCommand>();
    command.add_option("-f,--filename", cmd->files, "YAML file or directory; repeatable")->required();
    add_namespace_option(command, cmd->ns, "namespace for documents that name none");
    add_json_flag(command, cmd->json);
    command.add_flag("--strict", cmd->strict, "fields tcpshift cannot honour are errors");
    return [cmd](Streams io) { return run_explain(*cmd, io); };
}

}  // namespace tcpshift
