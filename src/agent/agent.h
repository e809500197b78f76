// `tcpshift agent`: applies a configuration and keeps it applied. It watches the files
// (inotify, debounced) and SIGHUP, re-applies on change, keeps the previous configuration
// serving when a new one fails, adopts listeners every second, and serves /metrics and
// /healthz. It probes the connect-time backends (agent/probe.h). The data plane is pinned, so
// traffic keeps flowing while the agent restarts.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "apply/target.h"
#include "base/streams.h"

namespace tcpshift {

struct AgentOptions {
    TargetOptions target;
    std::vector<std::string> config;  // files or directories: together, the whole applied set
    std::string ns = "default";
    std::string metrics_addr = "127.0.0.1:9464";  // in the caller's network namespace
    bool detach_on_exit = false;
    bool strict = false;
    // How often each connect-time backend is probed with a TCP connect; 0: never.
    std::chrono::milliseconds probe_interval{5000};
};

// Runs until SIGTERM or SIGINT.
Result<void> run_agent(const AgentOptions& options, Streams io);

}  // namespace tcpshift
