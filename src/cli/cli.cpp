#include "cli/cli.h"

#include <cstdio>

#include "cli/verbs.h"

namespace tcpshift {

namespace {

struct Verb {
    const char* name;
    const char* summary;
    AddVerb add;
};

// Every verb, in the order `tcpshift --help` lists them.
constexpr Verb kVerbs[] = {
    {"attach", "load and pin the data plane for a network namespace", add_attach},
    {"apply", "add or replace resources and install the resulting routing", add_apply},
    {"delete", "remove applied resources: -f FILE, or KIND NAME", add_delete},
    {"get", "list the applied resources, optionally of one KIND", add_get},
    {"verify",
     "compare the pinned maps with the applied set (and the agent's config, when an agent runs) or a config; exit 1 "
     "on any difference",
     add_verify},
    {"set", "shift a service's weights, e.g. `set tcp-echo v1=20 v2=80`", add_set},
    {"rebalance",
     "close the excess connections of backends above their share, at a budgeted rate, so live connections follow "
     "the weights",
     add_rebalance},
    {"rollout",
     "a canary in steps: shift new connections to a subset step by step, judging its kernel-measured failures and "
     "RTT against the baseline's, and put the starting weights back when a gate fails",
     add_rollout},
    {"status", "frontends, services, subsets, weights, backend readiness", add_status},
    {"prune", "remove the pins, state and sock_ops links of namespaces deleted without detach", add_prune},
    {"stats", "per service and backend: steered, fallbacks, refused", add_stats},
    {"explain", "print what a config would route, and where each value came from; offline, no root", add_explain},
    {"detach", "remove the programs, pins and applied state of a namespace", add_detach},
    {"agent",
     "apply a config and keep it applied: watch the files, reload on change or SIGHUP, serve /metrics and /healthz",
     add_agent},
    {"version", "print the version", add_version},
};

constexpr const char* kFooter = R"(
Examples:
  tcpshift apply -f tcp-echo.yaml          route a service (attaches on first use)
  tcpshift apply -f istio/                 Istio Gateway, VirtualService, DestinationRule,
                                           ServiceEntry, WorkloadEntry, Service; Gateway API
                                           Gateway and TCPRoute
  tcpshift set tcp-echo v1=20 v2=80        shift new connections, 20% to v1 and 80% to v2
  tcpshift rebalance tcp-echo --rate 20/s  move long-lived connections to the new weights
                                           (closes the excess with a reset; clients reconnect)
  tcpshift rollout tcp-echo --to v2 --steps 5,10,25,50,100 --interval 30s \
      --max-failure-rate 1% --max-rtt-increase 50%
                                           a canary: each step judged on the kernel's figures
                                           for v2 against v1; a failing gate puts v1 back
  tcpshift rollout status tcp-echo         its step, gates and notes (also pause, resume, abort)
  tcpshift status                          frontends, weights, backends ready or not
  tcpshift stats --json                    connections steered per backend
  tcpshift get virtualservices             the applied resources
  tcpshift explain -f tcp-echo.yaml        what a config would do; no root needed
  tcpshift verify                          do the pinned maps hold what was applied, and
                                           what the namespace's agent keeps applied?
  tcpshift detach                          remove programs, pins and local routes
  tcpshift status --all                    every attached namespace; `prune` cleans deleted ones
  tcpshift agent --config /etc/tcpshift/   keep a directory applied; metrics on 127.0.0.1:9464

Exit status: 0 done, 1 the system refused (privilege, kernel, busy pins, an agent keeps
the namespace: apply, set, delete and detach need --force beside it) or verify found a
difference, 2 usage or config error, 3 a rollout ended without promotion (a gate failed,
it was aborted, or its weights were changed under it).
Pins: /sys/fs/bpf/tcpshift/<netns inode>/; read them with `bpftool map dump pinned ...`.)";

// Control characters from hostile input are escaped so an error stays one line, and a
// message that quotes megabytes of input is cut.
std::string one_line(const std::string& message) {
    constexpr size_t kMax = 2000;
    std::string out;
    for (unsigned char c : message) {
        if (out.size() >= kMax) {
            out += "...";
            break;
        }
        if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

bool is_verb(const char* arg) {
    for (const auto& verb : kVerbs)
        if (std::string_view(verb.name) == arg) return true;
    return false;
}

Result<void> unknown_verb(const char* arg) {
    std::string known;
    for (const auto& verb : kVerbs) known += (known.empty() ? "" : ", ") + std::string(verb.name);
    return fail(config_error(std::string("unknown command \"") + arg + "\"; commands: " + known));
}

}  // namespace

Result<void> run_cli(int argc, const char* const* argv, Streams io) {
    CLI::App app{"tcpshift: weighted TCP traffic shifting on one Linux host, without a proxy.\n"
                 "An sk_lookup program hands each new connection to a backend's listening socket,\n"
                 "chosen by weighted hashing; established connections are never moved.",
                 "tcpshift"};
    app.footer(kFooter);
    app.require_subcommand(1);
    std::vector<std::pair<CLI::App*, Action>> actions;
    for (const auto& verb : kVerbs) {
        CLI::App* command = app.add_subcommand(verb.name, verb.summary);
        actions.emplace_back(command, verb.add(*command));
    }
    if (argc > 1 && argv[1][0] != '-' && !is_verb(argv[1])) return unknown_verb(argv[1]);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        app.exit(e, io.out, io.err);
        return {};
    } catch (const CLI::CallForAllHelp& e) {
        app.exit(e, io.out, io.err);
        return {};
    } catch (const CLI::ParseError& e) {
        return fail(config_error(std::string(e.what()) + "; see `tcpshift --help`"));
    }
    for (const auto& [command, action] : actions)
        if (command->parsed()) return action(io);
    return {};
}

int exit_status(const Result<void>& result, std::ostream& err) {
    if (result) return 0;
    err << "tcpshift: " << one_line(result.error().message) << "\n";
    switch (result.error().kind) {
        case ErrorKind::kSystem: return 1;
        case ErrorKind::kConfig: return 2;
        case ErrorKind::kAborted: return 3;
    }
    return 1;
}

}  // namespace tcpshift
