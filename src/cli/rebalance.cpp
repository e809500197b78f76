// tcpshift rebalance: after a weight shift, close the excess connections of the backends above
// their new share, at a budgeted rate with jitter, so that long-lived connections follow the
// weights as the clients reconnect. A backend at or under its share loses none.
#include <charconv>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "apply/closing.h"
#include "apply/session.h"
#include "cli/rebalance_output.h"
#include "cli/verbs.h"

namespace tcpshift {

namespace {

struct RebalanceCommand {
    TargetOptions target;
    std::string service;
    std::string rate = "50/s";
    uint32_t max = 0;
    double timeout_s = 60;
    bool json = false;
};

// "50", "50/s".
Result<uint32_t> parse_rate(std::string text) {
    if (text.size() > 2 && text.ends_with("/s")) text.resize(text.size() - 2);
    uint32_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size() || n == 0 || n > kMaxRebalanceRate)
        return fail(config_error("rebalance: --rate \"" + text + "\": give connections a second, 1-" +
                                 std::to_string(kMaxRebalanceRate) + ", e.g. 50/s"));
    return n;
}

Result<void> run_rebalance_command(const RebalanceCommand& cmd, Streams io) {
    auto rate = parse_rate(cmd.rate);
    if (!rate) return fail(rate.error());
    if (cmd.timeout_s <= 0 || cmd.timeout_s > 3600)
        return fail(config_error("rebalance: --timeout must be above 0 and at most 3600 seconds"));
    PlanService service;
    {
        // The plan is read under the shared lock; the closing runs without it, so that a
        // writer (`set`, the agent) is not kept waiting for the whole budget.
        auto dataplane = open_session("rebalance", cmd.target, Access::kRead, print_progress(io.err));
        if (!dataplane) return fail(dataplane.error());
        if (!dataplane->attached())
            return fail(config_error("rebalance: nothing is attached in network namespace " +
                                     std::to_string(dataplane->netns().inode) + "; apply a config first"));
        auto applied = load_applied(*dataplane);
        if (!applied) return fail(applied.error());
        const PlanService* svc = applied->plan.find_service(cmd.service);
        if (!svc) {
            std::string known;
            for (const auto& s : applied->plan.services) known += (known.empty() ? "" : ", ") + s.name;
            return fail(config_error("rebalance: no service \"" + cmd.service + "\" is applied" +
                                     (known.empty() ? "" : "; applied: " + known)));
        }
        service = *svc;
    }
    auto dataplane = Dataplane::open(cmd.target.netns, Dataplane::Access::kUnlocked);
    if (!dataplane) return fail(dataplane.error());
    const RebalanceOptions options{.rate = *rate,
                                   .max = cmd.max,
                                   .timeout = std::chrono::milliseconds(static_cast<int64_t>(cmd.timeout_s * 1000))};
    auto report = run_rebalance(*dataplane, service, options,
                                [&](const std::string& line) { io.err << "rebalance " << service.name << ": " << line << "\n"; });
    if (!report) return fail(report.error());
    if (cmd.json) {
        io.out << rebalance_json(service.name, options, *report).dump(2) << "\n";
    } else {
        print_rebalance(service.name, options, *report, io.out);
    }
    return {};
}

}  // namespace

Action add_rebalance(CLI::App& command) {
    auto cmd = std::make_shared<RebalanceCommand>();
    command.footer(
        "\nA weight change steers new connections only; long-lived ones stay where they are. rebalance counts each "
        "backend's established connections, gives it a target (its share of the weights times the service's "
        "connections) and closes connections of the backends above it, the longest idle first, at --rate a second "
        "with jitter, until none is above (the clients' reconnections follow the weights), --max are closed or "
        "--timeout passes. A backend at or under its target loses none.\n"
        "The close is an abort: the client gets a reset (RST), not a FIN, as with `ss -K`; clients must reconnect.\n"
        "Run it after the shift, or give the service spec.rebalance (TrafficShift) or the annotation "
        "tcpshift.io/rebalance (VirtualService) and `set` runs it.\n\n"
        "Example: tcpshift set tcp-echo v1=50 v2=50 && tcpshift rebalance tcp-echo --rate 20/s --max 500");
    command.add_option("service", cmd->service, "service name, as `status` shows it")->required();
    command.add_option("--rate", cmd->rate, "connections closed a second, N or N/s (default 50/s)");
    command.add_option("--max", cmd->max, "close at most K connections in all (default: no cap)");
    command.add_option("--timeout", cmd->timeout_s, "stop after this many seconds (default 60)");
    add_json_flag(command, cmd->json);
    add_netns_option(command, cmd->target);
    return [cmd](Streams io) { return run_rebalance_command(*cmd, io); };
}

}  // namespace tcpshift
