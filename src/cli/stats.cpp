// tcpshift stats: per service and backend, the connections steered, fallen back and refused,
// as the kernel counted them.
#include <memory>

#include "apply/session.h"
#include "cli/verbs.h"
#include "report/metrics.h"
#include "report/report.h"

namespace tcpshift {

namespace {

struct StatsCommand {
    TargetOptions target;
    bool json = false;
};

Result<void> run_stats(const StatsCommand& cmd, Streams io) {
    auto dataplane = open_session("stats", cmd.target, Access::kRead, print_progress(io.err));
    if (!dataplane) return fail(dataplane.error());
    auto applied = load_applied_plan(*dataplane);
    if (!applied) return fail(applied.error());
    StatsFacts facts;
    if (dataplane->attached()) {
        auto maps = dataplane->maps();
        if (!maps) return fail(maps.error());
        auto collected = collect_stats(**maps, applied->plan);
        if (!collected) return fail(collected.error());
        facts = std::move(*collected);
    }
    if (cmd.json) {
        io.out << stats_json(applied->plan, facts).dump(2) << "\n";
    } else {
        print_stats(applied->plan, facts, io.out);
    }
    return {};
}

}  // namespace

Action add_stats(CLI::App& command) {
    auto cmd = std::make_shared<StatsCommand>();
    add_json_flag(command, cmd->json);
    add_netns_option(command, cmd->target);
    return [cmd](Streams io) { return run_stats(*cmd, io); };
}

}  // namespace tcpshift
