// tcpshift detach: remove the programs, pins, local routes and applied state of a namespace.
#include <memory>

#include "apply/session.h"
#include "cli/verbs.h"

namespace tcpshift {

namespace {

struct DetachCommand {
    TargetOptions target;
    bool force = false;  // beside an agent
};

Result<void> run_detach(const DetachCommand& cmd, Streams io) {
    const Progress progress = print_progress(io.err);
    auto dataplane = open_session("detach", cmd.target, config_access(cmd.force), progress);
    if (!dataplane) return fail(dataplane.error());
    const bool attached = dataplane->attached();
    if (auto ok = detach_namespace(*dataplane, progress); !ok) return ok;
    io.out << (attached ? "detached from" : "nothing was attached to") << " network namespace "
           << dataplane->netns().inode << "\n";
    return {};
}

}  // namespace

Action add_detach(CLI::App& command) {
    auto cmd = std::make_shared<DetachCommand>();
    add_force_option(command, cmd->force);
    add_netns_option(command, cmd->target);
    return [cmd](Streams io) { return run_detach(*cmd, io); };
}

}  // namespace tcpshift
