// tcpshift delete: remove applied resources, named by the files that define them or by KIND
// NAME.
#include <memory>

#include "apply/session.h"
#include "cli/verbs.h"

namespace tcpshift {

namespace {

struct DeleteCommand {
    TargetOptions target;
    std::vector<std::string> files;  // delete what these files define ...
    std::string kind;                // ... or KIND NAME
    std::string name;
    std::string ns = "default";
    bool force = false;  // beside an agent
};

// The applied resources `delete KIND NAME` names: one, or an error that says why not.
Result<std::vector<ResourceKey>> named_keys(const DeleteCommand& cmd, const AppliedState& applied) {
    std::vector<ResourceKey> keys;
    for (const auto& stored : applied.resources)
        if (stored.key.matches_kind(cmd.kind) && stored.key.ns == cmd.ns && stored.key.name == cmd.name)
            keys.push_back(stored.key);
    if (keys.size() > 1)
        return fail(config_error("delete: \"" + cmd.kind + "\" names several kinds here; give the group, e.g. " +
                                 keys[0].kind_group()));
    if (keys.empty())
        return fail(config_error("delete: no " + cmd.kind + " \"" + cmd.name + "\" in namespace " + cmd.ns +
                                 " is applied; see `tcpshift get`"));
    return keys;
}

Result<void> run_delete(const DeleteCommand& cmd, Streams io) {
    std::vector<ResourceKey> keys;
    if (!cmd.files.empty()) {
        Diagnostics diag;
        auto resources = load_resources(cmd.files, cmd.ns, &diag);
        if (!resources) return fail(resources.error());
        for (const auto& r : *resources) keys.push_back(r.key());
    } else if (cmd.kind.empty() || cmd.name.empty()) {
        return fail(config_error("delete: give -f FILE, or KIND NAME (e.g. `delete virtualservice tcp-echo`)"));
    }
    auto dataplane = open_session("delete", cmd.target, config_access(cmd.force), print_progress(io.err));
    if (!dataplane) return fail(dataplane.error());
    const Edit edit = [&](const Applied& before) -> Result<NextSet> {
        if (cmd.files.empty()) {
            auto named = named_keys(cmd, before.state);
            if (!named) return fail(named.error());
            keys = std::move(*named);
        }
        return without_resources(before.parsed(), keys);
    };
    const TransactionOptions options{
        .unresolved = "delete: the remaining resources would no longer resolve, so nothing was deleted: "};
    auto outcome = run_transaction(*dataplane, edit, options, print_progress(io.err));
    if (!outcome) return fail(outcome.error());
    if (!outcome->changed) {
        io.out << "nothing to delete: none of those resources is applied\n";
        return {};
    }
    for (const auto& key : keys) io.out << key.str() << " deleted\n";
    print_applied(outcome->plan, io.out);
    return {};
}

}  // namespace

Action add_delete(CLI::App& command) {
    auto cmd = std::make_shared<DeleteCommand>();
    command.add_option("-f,--filename", cmd->files, "remove the resources this file or directory defines");
    command.add_option("kind", cmd->kind, "kind, e.g. virtualservice or gateway.networking.istio.io");
    command.add_option("name", cmd->name, "metadata.name");
    add_namespace_option(command, cmd->ns, "namespace of KIND NAME, and of documents that name none");
    add_force_option(command, cmd->force);
    add_netns_option(command, cmd->target);
    return [cmd](Streams io) { return run_delete(*cmd, io); };
}

}  // namespace tcpshift
