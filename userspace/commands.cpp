#include "tcpshift/commands.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <map>
#include <optional>

#include "tcpshift/config.h"
#include "tcpshift/dataplane.h"
#include "tcpshift/listeners.h"
#include "tcpshift/netns.h"
#include "tcpshift/pins.h"
#include "tcpshift/plan.h"
#include "tcpshift/report.h"
#include "tcpshift/state.h"
#include "tcpshift/yaml_fields.h"

namespace tcpshift {

namespace {

constexpr std::chrono::milliseconds kLockPatience{10000};

Result<void> require_root(const std::string& verb) {
    if (::geteuid() == 0) return {};
    return fail(system_error("tcpshift " + verb +
                             ": needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN to load and pin BPF programs); "
                             "run it with sudo"));
}

// The namespace a command works on, entered for the command's lifetime.
struct Target {
    ScopedNetns scope;
    NetnsId netns;
};

Result<Target> enter_target(const TargetOptions& options) {
    auto scope = ScopedNetns::enter(options.netns);
    if (!scope) return fail(scope.error());
    auto netns = current_netns();
    if (!netns) return fail(netns.error());
    return Target{.scope = std::move(*scope), .netns = *netns};
}

// The applied set and the plan it compiles to, as stored for an attached namespace.
struct Applied {
    AppliedState state;
    Plan plan;
};

Result<Plan> compile_resources(const std::vector<Resource>& resources, const IdAssignment& ids) {
    auto services = resolve_services(resources);
    if (!services) return fail(services.error());
    return compile_plan(*services, ids, default_limits());
}

Result<Applied> load_applied(const NetnsId& netns) {
    Applied applied;
    if (!dataplane_attached(netns)) return applied;
    auto state = load_state(netns.inode);
    if (!state) return fail(state.error());
    applied.state = std::move(*state);
    auto resources = stored_resources(applied.state);
    if (!resources) return fail(resources.error());
    auto plan = compile_resources(*resources, applied.state.ids);
    if (!plan) return fail(plan.error());
    applied.plan = std::move(*plan);
    return applied;
}

// Installs `next` over what is applied, adopts listeners and stores the new set. When anything
// fails, the previous plan is installed again (or the fresh attachment removed), so the old
// configuration keeps serving.
Result<void> commit(const Target& target, const Applied& before, AppliedState next_state, const Plan& next,
                    Streams io) {
    if (auto ok = check_frontend_conflicts(next); !ok) return ok;
    auto attached_now = attach_dataplane(target.netns, AttachOptions{});
    if (!attached_now) return fail(attached_now.error());
    if (*attached_now) io.err << "attached to network namespace " << target.netns.inode << ", pins in "
                              << pin_dir(target.netns.inode) << "\n";
    auto maps = open_dataplane(target.netns);
    if (!maps) return fail(maps.error());

    const Plan* previous = before.state.resources.empty() ? nullptr : &before.plan;
    auto installed = install_plan(*maps, next, previous, target.netns);
    if (installed) {
        next_state.ids = next.ids;
        installed = save_state(target.netns.inode, next_state);
    }
    if (!installed) {
        if (*attached_now) {
            (void)detach_dataplane(target.netns);
        } else if (previous) {
            (void)install_plan(*maps, *previous, &next, target.netns);
        }
        return installed;
    }
    auto adopted = adopt_listeners(*maps, next, &io.err);
    if (!adopted) return fail(adopted.error());
    return {};
}

void print_applied(const Plan& plan, std::ostream& out) {
    for (const auto& svc : plan.services) {
        out << "service " << svc.name << ":";
        for (const auto& subset : svc.subsets) out << " " << subset.name << " " << percent(subset.share);
        out << "\n";
    }
}

}  // namespace

Result<void> run_attach(const AttachCommand& cmd, Streams io) {
    if (auto ok = require_root("attach"); !ok) return ok;
    auto target = enter_target(cmd.target);
    if (!target) return fail(target.error());
    auto lock = PinLock::acquire(kLockPatience);
    if (!lock) return fail(lock.error());
    auto attached = attach_dataplane(target->netns, AttachOptions{.cgroup = cmd.cgroup});
    if (!attached) return fail(attached.error());
    io.out << (*attached ? "attached" : "already attached") << " to network namespace " << target->netns.inode
           << ", pins in " << pin_dir(target->netns.inode) << "\n";
    return {};
}

Result<void> run_apply(const ApplyCommand& cmd, Streams io) {
    std::vector<std::string> notes;
    auto resources = load_resources(cmd.files, cmd.ns, &notes);
    if (!resources) return fail(resources.error());
    for (const auto& note : notes) io.err << note << "\n";
    if (resources->empty())
        return fail(config_error("apply: no resource tcpshift handles in " + std::to_string(cmd.files.size()) +
                                 " path(s); it takes kind TrafficShift (tcpshift.io/v1alpha1)"));
    if (auto ok = require_root("apply"); !ok) return ok;
    auto target = enter_target(cmd.target);
    if (!target) return fail(target.error());
    auto lock = PinLock::acquire(kLockPatience);
    if (!lock) return fail(lock.error());
    auto before = load_applied(target->netns);
    if (!before) return fail(before.error());

    AppliedState next_state = before->state;
    merge_resources(next_state, *resources);
    // Compile the incoming documents as read, not as stored, so errors name their file:line.
    auto stored = stored_resources(before->state);
    if (!stored) return fail(stored.error());
    std::vector<Resource> merged;
    for (auto& r : *stored) {
        bool replaced = false;
        for (const auto& incoming : *resources) replaced = replaced || incoming.key() == r.key();
        if (!replaced) merged.push_back(std::move(r));
    }
    merged.insert(merged.end(), resources->begin(), resources->end());
    auto next = compile_resources(merged, before->state.ids);
    if (!next) return fail(next.error());
    if (cmd.dry_run) {
        io.out << "dry run, nothing changed; would install:\n";
        print_explain(*next, io.out);
        return {};
    }
    if (auto ok = commit(*target, *before, next_state, *next, io); !ok) return ok;
    print_applied(*next, io.out);
    return {};
}

Result<void> run_set(const SetCommand& cmd, Streams io) {
    std::map<std::string, uint32_t> weights;
    for (const auto& arg : cmd.weights) {
        const auto eq = arg.find('=');
        if (eq == std::string::npos || eq == 0)
            return fail(config_error("set: \"" + arg + "\" is not SUBSET=WEIGHT, e.g. v1=20"));
        YAML::Node value(arg.substr(eq + 1));
        auto weight = scalar_weight(value, "set", arg.substr(0, eq));
        if (!weight)
            return fail(config_error("set: " + arg.substr(0, eq) + ": weight \"" + arg.substr(eq + 1) +
                                     "\" must be an integer from 0 to 1000000"));
        weights[arg.substr(0, eq)] = *weight;
    }
    if (auto ok = require_root("set"); !ok) return ok;
    auto target = enter_target(cmd.target);
    if (!target) return fail(target.error());
    auto lock = PinLock::acquire(kLockPatience);
    if (!lock) return fail(lock.error());
    auto before = load_applied(target->netns);
    if (!before) return fail(before.error());
    const PlanService* svc = before->plan.find_service(cmd.service);
    if (!svc) {
        std::string known;
        for (const auto& s : before->plan.services) known += (known.empty() ? "" : ", ") + s.name;
        return fail(config_error("set: no service \"" + cmd.service + "\" is applied in network namespace " +
                                 std::to_string(target->netns.inode) +
                                 (known.empty() ? "; apply one first" : "; applied: " + known)));
    }
    for (const auto& [name, weight] : weights) {
        bool found = false;
        for (const auto& subset : svc->subsets) found = found || subset.name == name;
        if (!found) {
            std::string known;
            for (const auto& subset : svc->subsets) known += (known.empty() ? "" : ", ") + subset.name;
            return fail(config_error("set: service \"" + cmd.service + "\" has no subset \"" + name +
                                     "\"; its subsets: " + known));
        }
    }

    AppliedState next_state = before->state;
    auto resources = stored_resources(next_state);
    if (!resources) return fail(resources.error());
    for (auto& r : *resources) {
        if (r.key() != svc->origin) continue;
        YAML::Node subsets = r.node["spec"]["subsets"];
        for (size_t i = 0; i < subsets.size(); ++i) {
            const auto name = subsets[i]["name"].as<std::string>();
            if (auto it = weights.find(name); it != weights.end()) subsets[i]["weight"] = it->second;
        }
        merge_resources(next_state, {r});
        for (auto& stored : next_state.resources)
            if (stored.key == r.key()) stored.source = "tcpshift set";
    }
    auto merged = stored_resources(next_state);
    if (!merged) return fail(merged.error());
    auto next = compile_resources(*merged, before->state.ids);
    if (!next) return fail(next.error());
    if (auto ok = commit(*target, *before, next_state, *next, io); !ok) return ok;
    print_applied(Plan{.services = {*next->find_service(cmd.service)}}, io.out);
    return {};
}

Result<void> run_status(const ShowCommand& cmd, Streams io) {
    if (auto ok = require_root("status"); !ok) return ok;
    auto target = enter_target(cmd.target);
    if (!target) return fail(target.error());
    auto applied = load_applied(target->netns);
    if (!applied) return fail(applied.error());
    StatusFacts facts{.netns_inode = target->netns.inode, .attached = dataplane_attached(target->netns)};
    if (facts.attached) {
        auto maps = open_dataplane(target->netns);
        if (!maps) return fail(maps.error());
        auto ready = ready_backends(*maps, applied->plan);
        if (!ready) return fail(ready.error());
        facts.ready.insert(ready->begin(), ready->end());
    }
    if (cmd.json) {
        io.out << status_json(applied->plan, facts).dump(2) << "\n";
    } else {
        print_status(applied->plan, facts, io.out);
    }
    return {};
}

Result<void> run_stats(const ShowCommand& cmd, Streams io) {
    if (auto ok = require_root("stats"); !ok) return ok;
    auto target = enter_target(cmd.target);
    if (!target) return fail(target.error());
    auto applied = load_applied(target->netns);
    if (!applied) return fail(applied.error());
    StatsFacts facts;
    if (dataplane_attached(target->netns)) {
        auto maps = open_dataplane(target->netns);
        if (!maps) return fail(maps.error());
        for (const auto& svc : applied->plan.services) {
            auto counters = read_service_counters(*maps, svc.id);
            if (!counters) return fail(counters.error());
            facts.services[svc.id] = *counters;
        }
        for (const auto& [name, id] : applied->plan.ids.backends) {
            auto counters = read_backend_counters(*maps, id);
            if (!counters) return fail(counters.error());
            facts.backends[id] = *counters;
        }
    }
    if (cmd.json) {
        io.out << stats_json(applied->plan, facts).dump(2) << "\n";
    } else {
        print_stats(applied->plan, facts, io.out);
    }
    return {};
}

Result<void> run_explain(const ExplainCommand& cmd, Streams io) {
    std::vector<std::string> notes;
    auto resources = load_resources(cmd.files, cmd.ns, &notes);
    if (!resources) return fail(resources.error());
    for (const auto& note : notes) io.err << note << "\n";
    auto plan = compile_resources(*resources, IdAssignment{});
    if (!plan) return fail(plan.error());
    if (cmd.json) {
        io.out << explain_json(*plan).dump(2) << "\n";
    } else {
        print_explain(*plan, io.out);
    }
    return {};
}

Result<void> run_detach(const TargetOptions& cmd, Streams io) {
    if (auto ok = require_root("detach"); !ok) return ok;
    auto target = enter_target(cmd);
    if (!target) return fail(target.error());
    auto lock = PinLock::acquire(kLockPatience);
    if (!lock) return fail(lock.error());
    const bool attached = dataplane_attached(target->netns);
    if (auto ok = detach_dataplane(target->netns); !ok) return ok;
    io.out << (attached ? "detached from" : "nothing was attached to") << " network namespace "
           << target->netns.inode << "\n";
    return {};
}

namespace {

constexpr const char* kFooter = R"(
Examples:
  tcpshift apply -f tcp-echo.yaml          route a service (attaches on first use)
  tcpshift set tcp-echo v1=20 v2=80        shift new connections, 20% to v1 and 80% to v2
  tcpshift status                          frontends, weights, backends ready or not
  tcpshift stats --json                    connections steered per backend
  tcpshift explain -f tcp-echo.yaml        what a config would do; no root needed
  tcpshift detach                          remove programs and pins

Exit status: 0 done, 1 the system refused (privilege, kernel, busy), 2 usage or config error.
Pins: /sys/fs/bpf/tcpshift/<netns inode>/; read them with `bpftool map dump pinned ...`.)";

void add_netns(CLI::App* cmd, TargetOptions& target) {
    cmd->add_option("--netns", target.netns,
                    "network namespace: a name under /var/run/netns or a path like /proc/PID/ns/net "
                    "(default: the caller's)");
}

}  // namespace

int run_cli(int argc, const char* const* argv, Streams io) {
    CLI::App app{"tcpshift: weighted TCP traffic shifting on one Linux host, without a proxy.\n"
                 "An sk_lookup program hands each new connection to a backend's listening socket,\n"
                 "chosen by weighted hashing; established connections are never moved.",
                 "tcpshift"};
    app.footer(kFooter);
    app.require_subcommand(1);

    AttachCommand attach;
    auto* attach_cmd = app.add_subcommand("attach", "load and pin the data plane for a network namespace");
    add_netns(attach_cmd, attach.target);
    attach_cmd->add_option("--cgroup", attach.cgroup, "cgroup v2 directory for sock_ops (default: the cgroup2 root)");

    ApplyCommand apply;
    auto* apply_cmd = app.add_subcommand("apply", "add or replace resources and install the resulting routing");
    apply_cmd->add_option("-f,--filename", apply.files, "YAML file or directory (- for stdin); repeatable")
        ->required();
    apply_cmd->add_option("-n,--namespace", apply.ns, "namespace for documents that name none")
        ->capture_default_str();
    apply_cmd->add_flag("--dry-run", apply.dry_run, "validate and print the plan; change nothing");
    add_netns(apply_cmd, apply.target);

    SetCommand set;
    auto* set_cmd = app.add_subcommand("set", "shift a service's weights, e.g. `set tcp-echo v1=20 v2=80`");
    set_cmd->add_option("service", set.service, "service name, as `status` shows it")->required();
    set_cmd->add_option("weights", set.weights, "SUBSET=WEIGHT pairs; unnamed subsets keep their weight")
        ->required();
    add_netns(set_cmd, set.target);

    ShowCommand status;
    auto* status_cmd = app.add_subcommand("status", "frontends, services, subsets, weights, backend readiness");
    status_cmd->add_flag("--json", status.json, "print JSON");
    add_netns(status_cmd, status.target);

    ShowCommand stats;
    auto* stats_cmd = app.add_subcommand("stats", "per service and backend: steered, fallbacks, refused");
    stats_cmd->add_flag("--json", stats.json, "print JSON");
    add_netns(stats_cmd, stats.target);

    ExplainCommand explain;
    auto* explain_cmd = app.add_subcommand("explain", "print what a config would route, and where each value came "
                                                      "from; offline, no root");
    explain_cmd->add_option("-f,--filename", explain.files, "YAML file or directory; repeatable")->required();
    explain_cmd->add_option("-n,--namespace", explain.ns, "namespace for documents that name none")
        ->capture_default_str();
    explain_cmd->add_flag("--json", explain.json, "print JSON");

    TargetOptions detach;
    auto* detach_cmd = app.add_subcommand("detach", "remove the programs, pins and applied state of a namespace");
    add_netns(detach_cmd, detach);

    auto* version_cmd = app.add_subcommand("version", "print the version");

    if (argc > 1 && argv[1][0] != '-') {
        std::string known;
        bool found = false;
        for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
            found = found || sub->get_name() == argv[1];
            known += (known.empty() ? "" : ", ") + sub->get_name();
        }
        if (!found) {
            io.err << "tcpshift: unknown command \"" << argv[1] << "\"; commands: " << known << "\n";
            return 2;
        }
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e, io.out, io.err);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e, io.out, io.err);
    } catch (const CLI::ParseError& e) {
        std::string what = e.what();
        io.err << "tcpshift: " << what << "; see `tcpshift --help`\n";
        return 2;
    }

    Result<void> result;
    if (attach_cmd->parsed()) result = run_attach(attach, io);
    if (apply_cmd->parsed()) result = run_apply(apply, io);
    if (set_cmd->parsed()) result = run_set(set, io);
    if (status_cmd->parsed()) result = run_status(status, io);
    if (stats_cmd->parsed()) result = run_stats(stats, io);
    if (explain_cmd->parsed()) result = run_explain(explain, io);
    if (detach_cmd->parsed()) result = run_detach(detach, io);
    if (version_cmd->parsed()) io.out << "tcpshift " << TCPSHIFT_VERSION << "\n";
    if (!result) {
        io.err << "tcpshift: " << result.error().message << "\n";
        return result.error().exit_code();
    }
    return 0;
}

}  // namespace tcpshift
