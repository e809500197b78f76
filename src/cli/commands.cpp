#include "cli/commands.h"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "config/config.h"
#include "dataplane/dataplane.h"
#include "report/inventory.h"
#include "dataplane/listeners.h"
#include "dataplane/local_routes.h"
#include "agent/agent.h"
#include "apply/agent_lock.h"
#include "bpf/abi.h"
#include "apply/transaction.h"
#include "report/metrics.h"
#include "base/netns.h"
#include "dataplane/pins.h"
#include "compile/plan.h"
#include "report/report.h"
#include "apply/state.h"
#include "config/yaml_fields.h"

namespace tcpshift {

namespace {

constexpr std::chrono::milliseconds kLockPatience{10000};

Result<void> require_root(const std::string& verb) {
    if (::geteuid() == 0) return {};
    return fail(system_error("tcpshift " + verb +
                             ": needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN to load and pin BPF programs); "
                             "run it with sudo"));
}

// A privileged verb: root, the target namespace, and (for writers) the pin lock.
struct Session {
    Target target;
    std::optional<PinLock> lock;
};

// How a verb touches the namespace.
enum class Access {
    kRead,
    kPins,          // takes the pin lock
    kConfig,        // takes the pin lock and changes what is applied: refused beside the agent
    kForcedConfig,  // the same, beside the agent with a warning
};

Access config_access(bool force) { return force ? Access::kForcedConfig : Access::kConfig; }

// The agent re-applies its own config at its next reload (a file change, SIGHUP, a restart),
// so a change made beside it lasts until then while its files say otherwise.
Result<void> check_agent(const std::string& verb, const NetnsId& netns, Access access, std::ostream& err) {
    auto agent = running_agent(agent_lock_path(netns.inode));
    if (!agent) return fail(agent.error());
    if (!*agent) return {};
    const std::string who = "the agent (" + (*agent)->str() + ")";
    if (access == Access::kConfig)
        return fail(system_error(verb + ": network namespace " + std::to_string(netns.inode) + " is kept by " + who +
                                 "; change its config, or pass --force to override it until its next reload"));
    err << "warning: " << who << " restores its config at its next reload (a file change or SIGHUP)\n";
    return {};
}

Result<Session> open_session(const std::string& verb, const TargetOptions& options, Access access,
                             std::ostream& err) {
    if (auto ok = require_root(verb); !ok) return fail(ok.error());
    if (auto ok = check_host_bpffs(); !ok) return fail(ok.error());
    auto target = enter_target(options);
    if (!target) return fail(target.error());
    if (access == Access::kConfig || access == Access::kForcedConfig)
        if (auto ok = check_agent(verb, target->netns, access, err); !ok) return fail(ok.error());
    Session session{.target = std::move(*target)};
    if (access != Access::kRead) {
        auto lock = PinLock::acquire(kLockPatience);
        if (!lock) return fail(lock.error());
        session.lock.emplace(std::move(*lock));
    }
    return session;
}

void print_applied(const Plan& plan, std::ostream& out) {
    for (const auto& svc : plan.services) {
        out << "service " << svc.name << ":";
        for (const auto& subset : svc.subsets) out << " " << subset.name << " " << percent(subset.share);
        out << "\n";
    }
    if (plan.services.empty()) out << "no services\n";
}

// Does a stored resource match `tcpshift get KIND` / `delete KIND NAME`? KIND is the kind
// in any case, optionally plural or with its group: virtualservice, VirtualServices,
// gateway.networking.istio.io.
bool kind_matches(const std::string& wanted, const std::string& key) {
    std::string lower;
    for (char c : wanted) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string kind_group = key.substr(0, key.find('/'));
    for (auto& c : kind_group) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string kind = kind_group.substr(0, kind_group.find('.'));
    const std::string group_suffix = kind_group.substr(kind.size());  // ".networking.istio.io" or ""
    return lower == kind || lower == kind + "s" || lower == kind_group || lower == kind + "s" + group_suffix;
}

}  // namespace

Result<void> run_attach(const AttachCommand& cmd, Streams io) {
    auto session = open_session("attach", cmd.target, Access::kPins, io.err);
    if (!session) return fail(session.error());
    const NetnsId& netns = session->target.netns;
    std::optional<gid_t> gid;
    if (!cmd.pin_group.empty()) {
        const group* g = ::getgrnam(cmd.pin_group.c_str());
        if (!g) return fail(config_error("attach: --pin-group " + cmd.pin_group + ": no such group"));
        gid = g->gr_gid;
    }
    auto attached = attach_dataplane(netns, AttachOptions{.cgroup = cmd.cgroup, .max_services = cmd.max_services});
    if (!attached) return fail(attached.error());
    auto limits = attached_limits(netns);
    if (!limits) return fail(limits.error());
    io.out << (*attached ? "attached" : "already attached") << " to network namespace " << netns.inode
           << ", pins in " << pin_dir(netns.inode) << ", room for " << limits->max_services << " services\n";
    if (!*attached && cmd.max_services != 0 && cmd.max_services != limits->max_services)
        return fail(config_error("attach: --max-services " + std::to_string(cmd.max_services) +
                                 ": the namespace is attached with room for " + std::to_string(limits->max_services) +
                                 "; maps cannot be resized in place, so detach and attach again"));
    if (gid) {
        if (auto ok = grant_pin_group(netns, *gid); !ok) return ok;
        if (*gid == 0) {
            io.out << "pins readable by root only\n";
        } else {
            io.out << "maps readable by group " << cmd.pin_group << " in " << group_pin_dir(netns.inode)
                   << " (read-only opens; the links stay root's)\n";
        }
    }
    return {};
}

Result<void> run_apply(const ApplyCommand& cmd, Streams io) {
    Diagnostics diag{.strict = cmd.strict};
    auto resources = load_resources(cmd.files, cmd.ns, &diag);
    if (!resources) return fail(resources.error());
    if (resources->empty())
        return fail(config_error("apply: no resource tcpshift handles in " + std::to_string(cmd.files.size()) +
                                 " path(s) (" + std::to_string(diag.notes.size()) +
                                 " document(s) of other kinds); see `tcpshift --help` for the accepted kinds"));
    auto session = open_session("apply", cmd.target, cmd.dry_run ? Access::kRead : config_access(cmd.force), io.err);
    if (!session) return fail(session.error());
    auto before = load_applied(session->target.netns);
    if (!before) return fail(before.error());

    auto merged = merged_resources(before->state, *resources);
    if (!merged) return fail(merged.error());
    auto next = compile_resources(*merged, before->state.ids, &diag, before->limits);
    if (!next) return fail(next.error());
    print_diagnostics(diag, io.err);
    if (cmd.dry_run) {
        io.out << "dry run, nothing changed; would install:\n";
        print_explain(*next, io.out);
        return {};
    }
    AppliedState next_state = before->state;
    merge_resources(next_state, *resources);
    if (auto ok = commit(session->target, *before, next_state, *next, io.err); !ok) return ok;
    for (const auto& r : *resources) io.out << r.key() << " applied\n";
    print_applied(*next, io.out);
    return {};
}

Result<void> run_delete(const DeleteCommand& cmd, Streams io) {
    std::vector<Resource> named;
    if (!cmd.files.empty()) {
        Diagnostics diag;
        auto resources = load_resources(cmd.files, cmd.ns, &diag);
        if (!resources) return fail(resources.error());
        named = std::move(*resources);
    } else if (cmd.kind.empty() || cmd.name.empty()) {
        return fail(config_error("delete: give -f FILE, or KIND NAME (e.g. `delete virtualservice tcp-echo`)"));
    }
    auto session = open_session("delete", cmd.target, config_access(cmd.force), io.err);
    if (!session) return fail(session.error());
    auto before = load_applied(session->target.netns);
    if (!before) return fail(before.error());

    std::vector<std::string> keys;
    for (const auto& r : named) keys.push_back(r.key());
    if (cmd.files.empty()) {
        for (const auto& stored : before->state.resources) {
            const std::string rest = stored.key.substr(stored.key.find('/') + 1);
            if (kind_matches(cmd.kind, stored.key) && rest == cmd.ns + "/" + cmd.name) keys.push_back(stored.key);
        }
        if (keys.size() > 1)
            return fail(config_error("delete: \"" + cmd.kind + "\" names several kinds here; give the group, e.g. " +
                                     keys[0].substr(0, keys[0].find('/'))));
        if (keys.empty())
            return fail(config_error("delete: no " + cmd.kind + " \"" + cmd.name + "\" in namespace " + cmd.ns +
                                     " is applied; see `tcpshift get`"));
    }
    AppliedState next_state = before->state;
    const size_t removed = remove_resources(next_state, keys);
    if (removed == 0) {
        io.out << "nothing to delete: none of those resources is applied\n";
        return {};
    }
    auto remaining = stored_resources(next_state);
    if (!remaining) return fail(remaining.error());
    auto next = compile_resources(*remaining, before->state.ids, nullptr, before->limits);
    if (!next)
        return fail(config_error("delete: the remaining resources would no longer resolve, so nothing was deleted: " +
                                 next.error().message));
    if (auto ok = commit(session->target, *before, next_state, *next, io.err); !ok) return ok;
    for (const auto& key : keys) io.out << key << " deleted\n";
    print_applied(*next, io.out);
    return {};
}

Result<void> run_get(const GetCommand& cmd, Streams io) {
    auto session = open_session("get", cmd.target, Access::kRead, io.err);
    if (!session) return fail(session.error());
    auto applied = load_applied(session->target.netns);
    if (!applied) return fail(applied.error());
    nlohmann::json list = nlohmann::json::array();
    TextTable t;
    t.row({"KIND", "NAMESPACE", "NAME", "APPLIED FROM"});
    for (const auto& r : applied->state.resources) {
        if (!cmd.kind.empty() && !kind_matches(cmd.kind, r.key)) continue;
        const auto first = r.key.find('/'), second = r.key.find('/', first + 1);
        const std::string kind = r.key.substr(0, first), ns = r.key.substr(first + 1, second - first - 1),
                          name = r.key.substr(second + 1);
        list.push_back({{"kind", kind}, {"namespace", ns}, {"name", name}, {"source", r.source}});
        t.row({kind, ns, name, r.source});
    }
    if (cmd.json) {
        io.out << nlohmann::json{{"resources", list}}.dump(2) << "\n";
    } else if (list.empty()) {
        io.out << "no resources applied" << (cmd.kind.empty() ? "" : " of kind " + cmd.kind) << "\n";
    } else {
        t.print(io.out);
    }
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
    auto session = open_session("set", cmd.target, config_access(cmd.force), io.err);
    if (!session) return fail(session.error());
    auto before = load_applied(session->target.netns);
    if (!before) return fail(before.error());
    const PlanService* svc = before->plan.find_service(cmd.service);
    if (!svc) {
        std::string known;
        for (const auto& s : before->plan.services) known += (known.empty() ? "" : ", ") + s.name;
        return fail(config_error("set: no service \"" + cmd.service + "\" is applied in network namespace " +
                                 std::to_string(session->target.netns.inode) +
                                 (known.empty() ? "; apply one first" : "; applied: " + known)));
    }
    std::map<std::string, const PlanSubset*> subsets;
    for (const auto& [name, weight] : weights) {
        for (const auto& subset : svc->subsets)
            if (subset.name == name) subsets[name] = &subset;
        if (!subsets.count(name)) {
            std::string known;
            for (const auto& subset : svc->subsets) known += (known.empty() ? "" : ", ") + subset.name;
            return fail(config_error("set: service \"" + cmd.service + "\" has no subset \"" + name +
                                     "\"; its subsets: " + known));
        }
    }

    // Rewrite the weights where the service's resource keeps them, so a later apply or get
    // sees them too.
    auto resources = stored_resources(before->state);
    if (!resources) return fail(resources.error());
    std::vector<Resource> changed;
    for (auto& r : *resources) {
        if (r.key() != svc->origin) continue;
        for (const auto& [name, weight] : weights) {
            const auto& path = subsets[name]->weight_path;
            YAML::Node node = r.node;
            for (size_t i = 0; i + 1 < path.size(); ++i)
                node.reset(node.IsSequence() ? node[std::stoul(path[i])] : node[path[i]]);
            node[path.back()] = weight;
        }
        changed.push_back(r);
    }
    AppliedState next_state = before->state;
    merge_resources(next_state, changed);
    for (auto& stored : next_state.resources)
        if (stored.key == svc->origin) stored.source = "tcpshift set";
    auto merged = stored_resources(next_state);
    if (!merged) return fail(merged.error());
    auto next = compile_resources(*merged, before->state.ids, nullptr, before->limits);
    if (!next) return fail(next.error());
    if (auto ok = commit(session->target, *before, next_state, *next, io.err); !ok) return ok;
    print_applied(Plan{.services = {*next->find_service(cmd.service)}}, io.out);
    return {};
}

namespace {

Result<void> run_status_all(const ShowCommand& cmd, Streams io) {
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

}  // namespace

Result<void> run_prune(const ShowCommand& cmd, Streams io) {
    if (auto ok = require_root("prune"); !ok) return ok;
    auto lock = PinLock::acquire(kLockPatience);
    if (!lock) return fail(lock.error());
    auto removed = prune_gone();
    if (!removed) return fail(removed.error());
    if (cmd.json) {
        io.out << inventory_json(*removed).dump(2) << "\n";
        return {};
    }
    for (const auto& ns : *removed)
        io.out << "removed the pins, state and sock_ops link of deleted network namespace " << ns.inode << " ("
               << ns.pins << ")\n";
    if (removed->empty()) io.out << "nothing to prune: every attached namespace is alive\n";
    return {};
}

Result<void> run_status(const ShowCommand& cmd, Streams io) {
    if (cmd.all) return run_status_all(cmd, io);
    auto session = open_session("status", cmd.target, Access::kRead, io.err);
    if (!session) return fail(session.error());
    const NetnsId& netns = session->target.netns;
    auto applied = load_applied(netns);
    if (!applied) return fail(applied.error());
    StatusFacts facts{.netns_inode = netns.inode,
                      .attached = dataplane_attached(netns),
                      .local_routes = applied->state.local_routes};
    if (facts.attached) {
        auto maps = open_dataplane(netns);
        if (!maps) return fail(maps.error());
        auto sockets = backend_sockets(*maps, applied->plan, netns);
        if (!sockets) return fail(sockets.error());
        for (const auto& [id, list] : *sockets)
            for (const auto& s : list) {
                if (s.serves) facts.ready.insert(id);
                if (!s.serves) facts.foreign[id].push_back(describe(s));
            }
    }
    if (cmd.json) {
        io.out << status_json(applied->plan, facts).dump(2) << "\n";
    } else {
        print_status(applied->plan, facts, io.out);
    }
    return {};
}

Result<void> run_stats(const ShowCommand& cmd, Streams io) {
    auto session = open_session("stats", cmd.target, Access::kRead, io.err);
    if (!session) return fail(session.error());
    const NetnsId& netns = session->target.netns;
    auto applied = load_applied(netns);
    if (!applied) return fail(applied.error());
    StatsFacts facts;
    if (dataplane_attached(netns)) {
        auto maps = open_dataplane(netns);
        if (!maps) return fail(maps.error());
        auto collected = collect_stats(*maps, applied->plan);
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

namespace {

// What differs between the pinned maps and `expected`.
Result<std::vector<std::string>> dataplane_differences(const NetnsId& netns, const Plan& expected) {
    if (!dataplane_attached(netns)) {
        if (expected.services.empty()) return std::vector<std::string>{};
        return std::vector<std::string>{"tcpshift is not attached to this network namespace"};
    }
    auto maps = open_dataplane(netns);
    if (!maps) return fail(maps.error());
    return diff_dataplane(*maps, expected, netns);
}

// What differs between the pinned maps and the config of the namespace's agent, each named
// after the agent. A config that does not load is a difference: the agent keeps serving the
// one before it.
Result<std::vector<std::string>> agent_differences(const NetnsId& netns, const Applied& applied,
                                                   const AgentClaim& agent) {
    const std::string prefix = "the agent's config (" + agent.str() + "): ";
    Diagnostics diag{.strict = agent.strict};
    auto resources = load_resources(agent.config, agent.ns, &diag);
    auto plan = resources ? compile_resources(*resources, applied.state.ids, &diag, applied.limits)
                          : Result<Plan>(fail(resources.error()));
    if (!plan)
        return std::vector<std::string>{prefix + "does not load, so the agent serves the config before it: " +
                                        plan.error().message};
    auto differences = dataplane_differences(netns, *plan);
    if (!differences) return fail(differences.error());
    for (auto& d : *differences) d = prefix + d;
    return differences;
}

void print_verdict(const VerifyCommand& cmd, const Plan& expected, const std::optional<AgentClaim>& agent,
                   const std::vector<std::string>& differences, std::ostream& out) {
    if (cmd.json) {
        nlohmann::json j{{"in_sync", differences.empty()}, {"differences", differences}, {"agent", nullptr}};
        if (agent) j["agent"] = {{"pid", agent->pid}, {"config", agent->config}};
        out << j.dump(2) << "\n";
    } else if (differences.empty()) {
        out << "in sync: the pinned state matches " << (cmd.files.empty() ? "the applied set" : "the config")
            << (agent ? " and the agent's config (" + agent->str() + ")" : "") << " (" << expected.services.size()
            << " services)\n";
    } else {
        for (const auto& d : differences) out << "differs: " << d << "\n";
    }
}

}  // namespace

Result<void> run_verify(const VerifyCommand& cmd, Streams io) {
    auto session = open_session("verify", cmd.target, Access::kRead, io.err);
    if (!session) return fail(session.error());
    const NetnsId& netns = session->target.netns;
    auto applied = load_applied(netns);
    if (!applied) return fail(applied.error());
    Plan expected = applied->plan;
    if (!cmd.files.empty()) {
        Diagnostics diag;
        auto resources = load_resources(cmd.files, cmd.ns, &diag);
        if (!resources) return fail(resources.error());
        auto plan = compile_resources(*resources, applied->state.ids, &diag, applied->limits);
        if (!plan) return fail(plan.error());
        expected = std::move(*plan);
    }
    auto differences = dataplane_differences(netns, expected);
    if (!differences) return fail(differences.error());
    // Without files, what the namespace should hold is also what its agent keeps applied.
    std::optional<AgentClaim> agent;
    if (cmd.files.empty()) {
        auto running = running_agent(agent_lock_path(netns.inode));
        if (!running) return fail(running.error());
        agent = std::move(*running);
    }
    if (agent) {
        auto drift = agent_differences(netns, *applied, *agent);
        if (!drift) return fail(drift.error());
        differences->insert(differences->end(), drift->begin(), drift->end());
    }
    print_verdict(cmd, expected, agent, *differences, io.out);
    if (!differences->empty())
        return fail(system_error("verify: " + std::to_string(differences->size()) +
                                 " difference(s) between the pinned state and the configuration"));
    return {};
}

Result<void> run_explain(const ExplainCommand& cmd, Streams io) {
    Diagnostics diag{.strict = cmd.strict};
    auto resources = load_resources(cmd.files, cmd.ns, &diag);
    if (!resources) return fail(resources.error());
    auto plan = compile_resources(*resources, IdAssignment{}, &diag);
    if (!plan) return fail(plan.error());
    print_diagnostics(diag, io.err);
    if (cmd.json) {
        io.out << explain_json(*plan).dump(2) << "\n";
    } else {
        print_explain(*plan, io.out);
    }
    return {};
}

Result<void> run_detach(const DetachCommand& cmd, Streams io) {
    auto session = open_session("detach", cmd.target, config_access(cmd.force), io.err);
    if (!session) return fail(session.error());
    const NetnsId& netns = session->target.netns;
    const bool attached = dataplane_attached(netns);
    if (attached) {
        auto state = load_state(netns.inode);
        if (state) (void)drop_local_routes(state->local_routes, Plan{}, io.err);
    }
    if (auto ok = detach_dataplane(netns); !ok) return ok;
    io.out << (attached ? "detached from" : "nothing was attached to") << " network namespace " << netns.inode
           << "\n";
    return {};
}

namespace {

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

constexpr const char* kFooter = R"(
Examples:
  tcpshift apply -f tcp-echo.yaml          route a service (attaches on first use)
  tcpshift apply -f istio/                 Istio Gateway, VirtualService, DestinationRule,
                                           ServiceEntry, WorkloadEntry, Service; Gateway API
                                           Gateway and TCPRoute
  tcpshift set tcp-echo v1=20 v2=80        shift new connections, 20% to v1 and 80% to v2
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
difference, 2 usage or config error.
Pins: /sys/fs/bpf/tcpshift/<netns inode>/; read them with `bpftool map dump pinned ...`.)";

void add_netns(CLI::App* cmd, TargetOptions& target) {
    cmd->add_option("--netns", target.netns,
                    "network namespace: a name under /var/run/netns or a path like /proc/PID/ns/net "
                    "(default: the caller's)");
}

// For the verbs that change what is applied, which refuse beside the namespace's agent.
void add_force(CLI::App* cmd, bool& force) {
    cmd->add_flag("--force", force,
                  "change it even though an agent keeps this namespace; the agent restores its config at its next "
                  "reload");
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
    attach_cmd->add_option("--max-services", attach.max_services,
                           "size the maps for this many services (default " + std::to_string(TS_MAX_SERVICES) +
                               "; each takes about 17 KB of weight tables)")
        ->check(CLI::Range(1u, kMaxServicesCeiling))
        ->type_name("N");
    attach_cmd->add_option("--pin-group", attach.pin_group,
                           "let this group read the maps (a scraper, bpftool with read-only opens) at "
                           "/run/tcpshift/bpf/<netns inode>/, whatever the mode of /sys/fs/bpf; the links stay "
                           "root's. Runs on an attached namespace too; --pin-group root takes the access back")
        ->type_name("GROUP");

    ApplyCommand apply;
    auto* apply_cmd = app.add_subcommand("apply", "add or replace resources and install the resulting routing");
    apply_cmd->add_option("-f,--filename", apply.files, "YAML file or directory (- for stdin); repeatable")
        ->required();
    apply_cmd->add_option("-n,--namespace", apply.ns, "namespace for documents that name none")
        ->capture_default_str();
    apply_cmd->add_flag("--dry-run", apply.dry_run, "validate and print the plan; change nothing");
    apply_cmd->add_flag("--strict", apply.strict, "fields tcpshift cannot honour (TLS, HTTP routes) are errors");
    add_force(apply_cmd, apply.force);
    add_netns(apply_cmd, apply.target);

    DeleteCommand del;
    auto* delete_cmd = app.add_subcommand("delete", "remove applied resources: -f FILE, or KIND NAME");
    delete_cmd->add_option("-f,--filename", del.files, "remove the resources this file or directory defines");
    delete_cmd->add_option("kind", del.kind, "kind, e.g. virtualservice or gateway.networking.istio.io");
    delete_cmd->add_option("name", del.name, "metadata.name");
    delete_cmd->add_option("-n,--namespace", del.ns, "namespace of KIND NAME, and of documents that name none")
        ->capture_default_str();
    add_force(delete_cmd, del.force);
    add_netns(delete_cmd, del.target);

    GetCommand get;
    auto* get_cmd = app.add_subcommand("get", "list the applied resources, optionally of one KIND");
    get_cmd->add_option("kind", get.kind, "kind, e.g. trafficshift, virtualservices, tcproute");
    get_cmd->add_flag("--json", get.json, "print JSON");
    add_netns(get_cmd, get.target);

    VerifyCommand verify;
    auto* verify_cmd = app.add_subcommand("verify", "compare the pinned maps with the applied set (and the agent's "
                                                    "config, when an agent runs) or a config; exit 1 on any "
                                                    "difference");
    verify_cmd->add_option("-f,--filename", verify.files, "compare with this config instead of the applied set");
    verify_cmd->add_option("-n,--namespace", verify.ns, "namespace for documents that name none")
        ->capture_default_str();
    verify_cmd->add_flag("--json", verify.json, "print JSON");
    add_netns(verify_cmd, verify.target);

    SetCommand set;
    auto* set_cmd = app.add_subcommand("set", "shift a service's weights, e.g. `set tcp-echo v1=20 v2=80`");
    set_cmd->add_option("service", set.service, "service name, as `status` shows it")->required();
    set_cmd->add_option("weights", set.weights, "SUBSET=WEIGHT pairs; unnamed subsets keep their weight")
        ->required();
    add_force(set_cmd, set.force);
    add_netns(set_cmd, set.target);

    ShowCommand status;
    auto* status_cmd = app.add_subcommand("status", "frontends, services, subsets, weights, backend readiness");
    status_cmd->add_flag("--json", status.json, "print JSON");
    add_netns(status_cmd, status.target);
    status_cmd->add_flag("--all", status.all,
                         "every network namespace tcpshift is attached to on this host, and those deleted "
                         "without detach (see prune)")
        ->excludes(status_cmd->get_option("--netns"));

    ShowCommand prune;
    auto* prune_cmd = app.add_subcommand(
        "prune", "remove the pins, state and sock_ops links of namespaces deleted without detach");
    prune_cmd->add_flag("--json", prune.json, "print JSON");

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
    explain_cmd->add_flag("--strict", explain.strict, "fields tcpshift cannot honour are errors");

    DetachCommand detach;
    auto* detach_cmd = app.add_subcommand("detach", "remove the programs, pins and applied state of a namespace");
    add_force(detach_cmd, detach.force);
    add_netns(detach_cmd, detach.target);

    AgentOptions agent;
    auto* agent_cmd = app.add_subcommand("agent", "apply a config and keep it applied: watch the files, reload on "
                                                  "change or SIGHUP, serve /metrics and /healthz");
    agent_cmd->add_option("-c,--config", agent.config, "YAML file or directory: the whole applied set; repeatable")
        ->required();
    agent_cmd->add_option("-n,--namespace", agent.ns, "namespace for documents that name none")->capture_default_str();
    agent_cmd->add_option("--metrics-addr", agent.metrics_addr,
                          "ADDRESS:PORT for /metrics and /healthz, in the caller's network namespace")
        ->capture_default_str();
    agent_cmd->add_flag("--detach-on-exit", agent.detach_on_exit, "remove the data plane on SIGTERM (default: keep "
                                                                  "it serving)");
    agent_cmd->add_flag("--strict", agent.strict, "fields tcpshift cannot honour are errors");
    add_netns(agent_cmd, agent.target);

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
    if (delete_cmd->parsed()) result = run_delete(del, io);
    if (get_cmd->parsed()) result = run_get(get, io);
    if (verify_cmd->parsed()) result = run_verify(verify, io);
    if (set_cmd->parsed()) result = run_set(set, io);
    if (status_cmd->parsed()) result = run_status(status, io);
    if (prune_cmd->parsed()) result = run_prune(prune, io);
    if (stats_cmd->parsed()) result = run_stats(stats, io);
    if (explain_cmd->parsed()) result = run_explain(explain, io);
    if (detach_cmd->parsed()) result = run_detach(detach, io);
    if (agent_cmd->parsed()) result = run_agent(agent, io);
    if (version_cmd->parsed()) io.out << "tcpshift " << TCPSHIFT_VERSION << "\n";
    if (!result) {
        io.err << "tcpshift: " << one_line(result.error().message) << "\n";
        return result.error().exit_code();
    }
    return 0;
}

}  // namespace tcpshift
