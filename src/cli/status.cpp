// tcpshift status: frontends, services, subsets, weights and whether each backend's socket
// is ready, as the kernel holds them; --all lists every attached namespace of the host.
#include <future>
#include <memory>

#include "apply/session.h"
#include "dataplane/live_connections.h"
#include "cli/verbs.h"
#include "report/inventory.h"
#include "report/report.h"

namespace tcpshift {

namespace {

struct StatusCommand {
    TargetOptions target;
    bool json = false;
    bool all = false;  // every attached namespace of the host, not one
};

Result<void> run_status_all(const StatusCommand& cmd, Streams io) {
    if (auto ok = require_root("status --all"); !ok) return ok;
    auto all = list_attached();
    if (!all) return fail(all.error());
    if (cmd.json) {
        io.out << inventory_json(*all).dump(2) << "\n";
    } else {
        print_inventory(*all, io.out);
    }
    return {};
}

// Which backends a listening socket serves, and the sockets under a backend's id that do not.
Result<void> add_socket_facts(Dataplane& dataplane, const Plan& plan, StatusFacts& facts,
                              std::future<DestroyPath>& path) {
    auto maps = dataplane.maps();
    if (!maps) return fail(maps.error());
    auto sockets = backend_sockets(**maps, plan, dataplane.netns());
    if (!sockets) return fail(sockets.error());
    auto health = backend_health(**maps, plan);
    if (!health) return fail(health.error());
    facts.health = std::move(*health);
    auto scope = client_scope(**maps);
    if (!scope) return fail(scope.error());
    facts.client_scope = std::move(*scope);
    facts.cgroup = cgroup_path(cgroup_attachment(dataplane.netns().inode).cgroup_id);
    // Connections of a remote backend are the clients' sockets, which carry no storage here:
    // only socket backends' connections are listed.
    if (auto live = steered_connections((*maps)->connections)) {
        facts.live.emplace();
        for (const auto& c : *live) ++(*facts.live)[{c.service_id, c.backend_id}];
    }
    facts.destroy_path = destroy_path_name(path.get());
    for (const auto& [id, list] : *sockets)
        for (const auto& s : list) {
            if (s.serves) facts.ready.insert(id);
            if (!s.serves) facts.foreign[id].push_back(describe(s));
        }
    return {};
}

Result<void> run_status(const StatusCommand& cmd, Streams io) {
    if (cmd.all) return run_status_all(cmd, io);
    auto dataplane = open_session("status", cmd.target, Access::kRead, print_progress(io.err));
    if (!dataplane) return fail(dataplane.error());
    // Which way connections would be closed is a probe load of a BPF object: the verifier's
    // time, spent beside the reading of the plan rather than after it.
    std::future<DestroyPath> path = std::async(std::launch::async, destroy_path);
    auto applied = load_applied_plan(*dataplane);
    if (!applied) return fail(applied.error());
    StatusFacts facts{.netns_inode = dataplane->netns().inode,
                      .attached = dataplane->attached(),
                      .local_routes = applied->state.local_routes,
                      .netns_option = cmd.target.netns};
    if (facts.attached)
        if (auto ok = add_socket_facts(*dataplane, applied->plan, facts, path); !ok) return ok;
    if (cmd.json) {
        io.out << status_json(applied->plan, facts).dump(2) << "\n";
    } else {
        print_status(applied->plan, facts, io.out);
    }
    return {};
}

}  // namespace

Action add_status(CLI::App& command) {
    auto cmd = std::make_shared<StatusCommand>();
    add_json_flag(command, cmd->json);
    add_netns_option(command, cmd->target);
    command
        .add_flag("--all", cmd->all,
                  "every network namespace tcpshift is attached to on this host, and those deleted without detach "
                  "(see prune)")
        ->excludes(command.get_option("--netns"));
    return [cmd](Streams io) { return run_status(*cmd, io); };
}

}  // namespace tcpshift
