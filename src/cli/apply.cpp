// tcpshift apply: add or replace resources and install the routing they compile to.
#include <memory>
#include <set>

#include "apply/session.h"
#include "cli/verbs.h"
#include "report/report.h"

namespace tcpshift {

namespace {

// The state-changing verbs refuse to work beside the namespace's agent, which would restore
// its own config at its next reload while its files say otherwise; `force` changes the data
// plane anyway, until then (an emergency shift), with a warning.
struct ApplyCommand {
    TargetOptions target;
    std::vector<std::string> files;
    std::string ns = "default";
    bool dry_run = false;
    bool strict = false;  // fields tcpshift cannot honour are errors, not warnings
    bool force = false;   // beside an agent
};

Result<void> run_apply(const ApplyCommand& cmd, Streams io) {
    Diagnostics diag{.strict = cmd.strict};
    auto resources = load_resources(cmd.files, cmd.ns, &diag);
    if (!resources) return fail(resources.error());
    if (resources->empty())
        return fail(config_error("apply: no resource tcpshift handles in " + std::to_string(cmd.files.size()) +
                                 " path(s) (" + std::to_string(diag.notes.size()) +
                                 " document(s) of other kinds); see `tcpshift --help` for the accepted kinds"));
    const Progress progress = print_progress(io.err);
    auto dataplane =
        open_session("apply", cmd.target, cmd.dry_run ? Access::kRead : config_access(cmd.force), progress);
    if (!dataplane) return fail(dataplane.error());
    std::set<ResourceKey> unchanged;  // a set: an apply may hold 10,000 documents
    const Edit edit = [&](const Applied& before) -> Result<NextSet> {
        auto next = with_resources(before.parsed(), *resources);
        if (next) unchanged = {next->unchanged.begin(), next->unchanged.end()};
        return next;
    };
    auto outcome = run_transaction(*dataplane, edit, {.dry_run = cmd.dry_run, .diagnostics = &diag}, progress);
    if (!outcome) return fail(outcome.error());
    if (cmd.dry_run) {
        io.out << "dry run, nothing changed; would install:\n";
        print_explain(outcome->plan, io.out);
        return {};
    }
    for (const auto& r : *resources) {
        io.out << r.key().str() << (unchanged.count(r.key()) ? " unchanged\n" : " applied\n");
    }
    print_applied(outcome->plan, io.out);
    return {};
}

}  // namespace

Action add_apply(CLI::App& command) {
    auto cmd = std::make_shared<ApplyCommand>();
    command.add_option("-f,--filename", cmd->files, "YAML file or directory (- for stdin); repeatable")->required();
    add_namespace_option(command, cmd->ns, "namespace for documents that name none");
    command.add_flag("--dry-run", cmd->dry_run, "validate and print the plan; change nothing");
    command.add_flag("--strict", cmd->strict, "fields tcpshift cannot honour (TLS, HTTP routes) are errors");
    add_force_option(command, cmd->force);
    add_netns_option(command, cmd->target);
    return [cmd](Streams io) { return run_apply(*cmd, io); };
}

}  // namespace tcpshift
