// tcpshift agent: apply a config and keep it applied (see agent/agent.h).
#include <memory>

#include "agent/agent.h"
#include "agent/probe.h"
#include "cli/verbs.h"

namespace tcpshift {

Action add_agent(CLI::App& command) {
    auto options = std::make_shared<AgentOptions>();
    auto probe_interval = std::make_shared<std::string>("5s");
    command.add_option("-c,--config", options->config, "YAML file or directory: the whole applied set; repeatable")
        ->required();
    add_namespace_option(command, options->ns, "namespace for documents that name none");
    command
        .add_option("--metrics-addr", options->metrics_addr,
                    "ADDRESS:PORT for /metrics and /healthz, in the caller's network namespace")
        ->capture_default_str();
    command.add_flag("--detach-on-exit", options->detach_on_exit,
                     "remove the data plane on SIGTERM (default: keep it serving)");
    command.add_flag("--strict", options->strict, "fields tcpshift cannot honour are errors");
    command
        .add_option("--probe-interval", *probe_interval,
                    "DURATION between TCP connects to each connect-time backend (100ms to 1h; 0: no probe)")
        ->capture_default_str();
    add_netns_option(command, options->target);
    return [options, probe_interval](Streams io) -> Result<void> {
        auto interval = parse_probe_interval(*probe_interval);
        if (!interval) return fail(interval.error());
        options->probe_interval = *interval;
        return run_agent(*options, io);
    };
}

Action add_version(CLI::App&) {
    return [](Streams io) -> Result<void> {
        io.out << "tcpshift " << TCPSHIFT_VERSION << "\n";
        return {};
    };
}

}  // namespace tcpshift
