#include "agent/agent.h"

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "agent/http.h"
#include "agent/log.h"
#include "agent/probe.h"
#include "agent/rollouts.h"
#include "agent/watch.h"
#include "apply/agent_lock.h"
#include "apply/closing.h"
#include "apply/session.h"
#include "apply/transaction.h"
#include "config/duration.h"
#include "dataplane/attach.h"
#include "dataplane/backend_health.h"
#include "dataplane/handle.h"
#include "dataplane/listeners.h"
#include "report/metrics.h"
#include "rollout/resource.h"

namespace tcpshift {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kDebounce = std::chrono::milliseconds(200);
constexpr auto kAdoptEvery = std::chrono::seconds(1);
// Finer than the jitter of a short maxConnectionDuration or idleTimeout (10% of 2 s is 200 ms),
// so that connections opened together are closed spread over their jitter, not in one tick.
constexpr auto kSweepEvery = std::chrono::milliseconds(250);

// The agent's view of the applied set, shared by the main loop (adoption) and the HTTP thread
// (metrics), with the reload counters.
class AppliedView {
   public:
    explicit AppliedView(NetnsId netns) : netns_(netns) {}

    void count_reload(const std::string& result) {
        std::lock_guard lock(mutex_);
        ++reloads_[result];
    }

    // Ready once the first apply has been tried and a data plane serves.
    bool ready() {
        std::lock_guard lock(mutex_);
        return !reloads_.empty() && dataplane_attached(netns_);
    }

    // The applied plan. It is recompiled only when the stored state changed, which also
    // picks up `tcpshift set` run beside the agent.
    Result<std::shared_ptr<const Plan>> plan(Dataplane& dataplane) {
        std::lock_guard lock(mutex_);
        return refreshed_plan(dataplane);
    }

    // A scrape never waits for a writer (a reload, a `tcpshift set`): it reads the counters
    // as they are, with the plan last stored.
    Result<std::string> render() {
        auto dataplane = Dataplane::open("", Dataplane::Access::kUnlocked);
        if (!dataplane) return fail(dataplane.error());
        std::lock_guard lock(mutex_);
        auto plan = refreshed_plan(*dataplane);
        if (!plan) return fail(plan.error());
        MetricsFacts facts{.reloads = reloads_};
        if (dataplane->attached()) {
            auto maps = dataplane->maps();
            if (!maps) return fail(maps.error());
            auto stats = collect_stats(**maps, **plan);
            if (!stats) return fail(stats.error());
            facts.stats = std::move(*stats);
            auto ready = ready_backends(**maps, **plan, netns_);
            if (!ready) return fail(ready.error());
            facts.ready.insert(ready->begin(), ready->end());
            // No listener stands for a connect-time backend: its health is its readiness.
            auto health = backend_health(**maps, **plan);
            if (!health) return fail(health.error());
            for (const auto& [id, h] : *health) {
                facts.ejections[id] = h.ejections;
                if (h.remote && h.available()) facts.ready.insert(id);
                if (!h.available()) facts.ready.erase(id);  // a socket backend ejected after early closes
            }
        }
        return render_metrics(**plan, facts);
    }

   private:
    // The state file is replaced by rename on every commit, so a new inode (or mtime) is a
    // new state.
    Result<std::shared_ptr<const Plan>> refreshed_plan(Dataplane& dataplane) {
        struct stat st {};
        const std::pair<ino_t, int64_t> version =
            ::stat(state_file(netns_.inode).c_str(), &st) == 0
                ? std::pair<ino_t, int64_t>{st.st_ino, st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec}
                : std::pair<ino_t, int64_t>{0, 0};
        if (!plan_ || version != plan_version_) {
            auto applied = load_applied_plan(dataplane);
            if (!applied) return fail(applied.error());
            plan_ = std::make_shared<const Plan>(std::move(applied->plan));
            plan_version_ = version;
        }
        return plan_;
    }

    NetnsId netns_;
    std::mutex mutex_;
    std::shared_ptr<const Plan> plan_;
    std::pair<ino_t, int64_t> plan_version_{0, -1};
    std::map<std::string, uint64_t> reloads_;
};

// The agent's work once it has started: reloads, adoption and signals, on the main thread,
// in the target namespace.
class Agent {
   public:
    Agent(const AgentOptions& options, const Target& target, AppliedView& view, Log& log)
        : options_(options), target_(target), view_(view), log_(log), rollouts_(target.netns, log, apply_mutex_) {}

    // Applies the config files as the whole applied set, with the weights of the rollouts it
    // declares over theirs, then starts or takes over those rollouts. Failures leave the
    // previous set.
    void reload(const char* why) {
        Diagnostics diag{.strict = options_.strict};
        std::vector<RolloutSpec> rollouts;
        auto result = apply_whole_set(diag, rollouts);
        for (const auto& w : diag.warnings) log_("warn", w);  // what the transaction did not report
        for (const auto& n : diag.notes) log_("info", n);
        if (!result) {
            view_.count_reload("error");
            log_("error", std::string("reload (") + why + ") failed, the previous configuration keeps serving: " +
                              result.error().message);
            return;
        }
        view_.count_reload("success");
        std::string summary;
        for (const auto& svc : result->services) {
            summary += (summary.empty() ? "" : "; ") + svc.name + ":";
            for (const auto& subset : svc.subsets) summary += " " + subset.name + " " + std::to_string(subset.weight);
        }
        log_("info", std::string("applied (") + why + "): " + std::to_string(result->services.size()) + " services" +
                         (summary.empty() ? "" : " — " + summary));
        rollouts_.reconcile(rollouts);
    }

    // Holds the rollouts where they are: their records let the next agent take them over.
    void stop_rollouts() { rollouts_.stop(); }

    // Adopts listeners that started without passing through sock_ops' view (or before it
    // attached), so readiness stays true to what listens. Under the pin lock, with the plan
    // stored now: a plan read before a writer's commit could register a socket under an id
    // that the commit gave to another backend. A writer at work adopts for its own plan, so
    // this round is skipped rather than waited for.
    void adopt() {
        auto dataplane = Dataplane::open("", Dataplane::Access::kExclusive, std::chrono::milliseconds(0));
        if (!dataplane || !dataplane->attached()) return;
        if (repaired(*dataplane)) return;
        auto plan = view_.plan(*dataplane);
        if (!plan) return;
        auto maps = dataplane->writable_maps();
        if (!maps) return;
        std::vector<std::string> adopted_from;
        auto adopted = adopt_listeners(**maps, **plan, &adopted_from);
        for (const auto& line : adopted_from) log_("info", line);
        if (!adopted) log_("warn", "adopt listeners: " + adopted.error().message);
    }

    // A change that stopped while it wrote the maps (a `tcpshift set --force` killed midway)
    // leaves them holding parts of two sets: with the pin lock held, no writer is under way, so
    // the mark is left over, and a transaction that changes nothing mends it. True when it did.
    bool repaired(Dataplane& dataplane) {
        auto maps = dataplane.maps();
        if (!maps) return false;
        auto serials = applied_serials(**maps);
        if (!serials || serials->installing == 0) return false;
        std::lock_guard apply(apply_mutex_);
        const Edit as_it_is = [](const Applied& before) -> Result<NextSet> {
            return NextSet{.state = before.state, .resources = before.resources, .changed = false};
        };
        if (auto done = run_transaction(dataplane, as_it_is, {}, log_progress(log_)); !done)
            log_("error", "repair: " + done.error().message);
        return true;
    }

    // Closes the connections past their service's maxConnectionDuration or idleTimeout, one
    // log line each. Without the pin lock: it only reads the connections' storage and the
    // plan last stored, and a connection is named by its cookie, never by an id a writer
    // could be reassigning.
    void sweep_lifetimes() {
        auto dataplane = Dataplane::open("", Dataplane::Access::kUnlocked);
        if (!dataplane || !dataplane->attached()) return;
        auto plan = view_.plan(*dataplane);
        if (!plan) return;
        if (std::none_of((*plan)->services.begin(), (*plan)->services.end(),
                         [](const PlanService& s) { return s.lifetime.any(); }))
            return;
        if (!announced_path_) {
            log_("info", std::string("maxConnectionDuration and idleTimeout close connections by ") +
                             destroy_path_name(destroy_path()) + " (a reset to the client)");
            announced_path_ = true;
        }
        auto maps = dataplane->maps();
        if (!maps) return;
        auto live = steered_connections((*maps)->connections);
        if (!live) {
            log_("warn", "list connections for maxConnectionDuration and idleTimeout: " + live.error().message);
            return;
        }
        const auto expired = expired_connections(**plan, *live, monotonic_ns());
        if (expired.empty()) return;
        std::vector<LiveConnection> doomed;
        for (const auto& e : expired) doomed.push_back(e.connection);
        auto closed = destroy_connections(doomed);
        if (!closed) {
            log_("warn", "close expired connections: " + closed.error().message);
            return;
        }
        for (const auto& e : expired)
            log_("info", "closed " + e.service + " connection " + e.connection.remote.str() + " -> " +
                             e.connection.local.str() + ": " + e.why);
    }

    void detach() {
        auto dataplane = Dataplane::open("", Dataplane::Access::kExclusive);
        if (!dataplane) {
            log_("error", "detach on exit: " + dataplane.error().message);
            return;
        }
        if (auto ok = detach_namespace(*dataplane, log_progress(log_)); !ok) {
            log_("error", "detach on exit: " + ok.error().message);
        } else {
            log_("info", "detached: programs, pins and local routes removed");
        }
    }

    // Reloads on change (debounced) and SIGHUP, adopts every second, closes expired connections
    // every 250 ms, until SIGTERM or SIGINT.
    // Fails when another agent took the namespace's lock.
    Result<void> run(ConfigWatch& watch, int signal_fd, AgentLock& lock) {
        constexpr auto kNever = Clock::time_point::max();
        Clock::time_point reload_at = kNever;  // a debounced reload is due then
        auto next_tick = Clock::now() + kAdoptEvery;
        auto next_sweep = Clock::now() + kSweepEvery;
        for (;;) {
            const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::min({next_tick, next_sweep, reload_at}) - Clock::now());
            pollfd fds[2] = {{signal_fd, POLLIN, 0}, {watch.fd(), POLLIN, 0}};
            ::poll(fds, 2, static_cast<int>(std::max<int64_t>(wait.count(), 0)));
            if ((fds[0].revents & POLLIN) && stop_requested(signal_fd)) return {};
            if ((fds[1].revents & POLLIN) && watch.changed()) reload_at = Clock::now() + kDebounce;
            if (Clock::now() >= reload_at) {
                reload_at = kNever;
                reload("config changed");
            }
            if (Clock::now() >= next_tick) {
                if (auto kept = lock.keep(); !kept) return fail(kept.error());
                adopt();
                next_tick = Clock::now() + kAdoptEvery;
            }
            if (Clock::now() >= next_sweep) {
                sweep_lifetimes();
                next_sweep = Clock::now() + kSweepEvery;
            }
        }
    }

   private:
    // Reads the pending signals: reloads on SIGHUP, unless a stop is pending too; true when
    // SIGTERM or SIGINT asks the agent to stop.
    bool stop_requested(int signal_fd) {
        bool hup = false, stop = false;
        signalfd_siginfo info{};
        while (::read(signal_fd, &info, sizeof(info)) == sizeof(info)) {
            if (info.ssi_signo == SIGHUP) {
                hup = true;
                continue;
            }
            stop = true;
            log_("info", std::string("signal ") + strsignal(static_cast<int>(info.ssi_signo)) + ": stopping" +
                             (options_.detach_on_exit ? "" : "; the data plane stays pinned and serving"));
        }
        if (hup && !stop) {
            log_("info", "SIGHUP: reloading");
            reload("SIGHUP");
        }
        return stop;
    }

    Result<Plan> apply_whole_set(Diagnostics& diag, std::vector<RolloutSpec>& rollouts) {
        std::lock_guard apply(apply_mutex_);
        auto resources = load_resources(options_.config, options_.ns, &diag);
        if (!resources) return fail(resources.error());
        auto declared = traffic_rollouts(*resources);
        if (!declared) return fail(declared.error());
        rollouts.clear();
        for (const auto& d : *declared) rollouts.push_back(d.spec);
        const auto overlay = rollouts_.overlay(rollouts);
        auto dataplane = Dataplane::open("", Dataplane::Access::kExclusive);
        if (!dataplane) return fail(dataplane.error());
        const Edit edit = [&](const Applied& before) -> Result<NextSet> {
            NextSet next = only_resources(before.state, *resources);
            if (!declared->empty()) {
                auto plan = compile_resources(next.resources, next.state.ids, nullptr, before.limits);
                if (plan)
                    if (auto ok = check_rollouts(*declared, *plan); !ok) return fail(ok.error());
            }
            return with_rollout_weights(std::move(next), overlay, before.limits, target_.netns, log_);
        };
        auto outcome = run_transaction(*dataplane, edit, {.diagnostics = &diag}, log_progress(log_));
        if (!outcome) return fail(outcome.error());
        return std::move(outcome->plan);
    }

    const AgentOptions& options_;
    const Target& target_;
    AppliedView& view_;
    Log& log_;
    bool announced_path_ = false;
    std::mutex apply_mutex_;  // a reload, or a rollout's step
    AgentRollouts rollouts_;
};

// One agent per namespace. The lock is taken before anything is bound or applied, so a
// second agent fails having changed nothing.
Result<AgentLock> claim_namespace(const AgentOptions& options) {
    auto inode = netns_inode(options.target.netns);
    if (!inode) return fail(inode.error());
    AgentClaim claim{.pid = ::getpid(), .ns = options.ns, .strict = options.strict};
    for (const auto& path : options.config) claim.config.push_back(fs::absolute(path).string());
    return AgentLock::acquire(agent_lock_path(*inode), claim);
}

// Signals go to a signalfd; they are blocked before any thread starts so that none takes them.
Result<Fd> block_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGHUP);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    Fd signal_fd(::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!signal_fd) return fail(system_error("signalfd", errno));
    return signal_fd;
}

}  // namespace

Result<void> run_agent(const AgentOptions& options, Streams io) {
    if (auto ok = require_root("agent", "run it as root or from the systemd unit"); !ok) return ok;
    if (options.config.empty()) return fail(config_error("agent: --config FILE|DIR is required"));
    if (auto ok = check_host_bpffs(); !ok) return fail(ok.error());
    auto listen = parse_endpoint(options.metrics_addr);
    if (!listen) return fail(config_error("--metrics-addr: " + listen.error().message));
    auto lock = claim_namespace(options);
    if (!lock) return fail(lock.error());
    auto signal_fd = block_signals();
    if (!signal_fd) return fail(signal_fd.error());
    auto watch = ConfigWatch::start(options.config);
    if (!watch) return fail(watch.error());
    // The metrics server binds in the caller's namespace: the host's loopback by default,
    // where Prometheus scrapes, whichever namespace the agent steers.
    auto server = MetricsServer::bind(*listen);
    if (!server) return fail(server.error());
    auto target = enter_target(options.target);
    if (!target) return fail(target.error());

    // The server's thread starts in the target namespace, where the metrics read the maps
    // and sockets; its socket stays in the caller's.
    AppliedView view(target->netns);
    server->serve({.metrics = [&view] { return view.render(); }, .ready = [&view] { return view.ready(); }});
    Log log(io.err);
    log("info", "agent started: network namespace " + std::to_string(target->netns.inode) + ", metrics on http://" +
                    options.metrics_addr + "/metrics, " +
                    (options.probe_interval.count() ? "connect-time backends probed every " +
                                                          duration_str(options.probe_interval.count())
                                                    : std::string("no probe")));
    Agent agent(options, *target, view, log);
    agent.reload("start");
    // Started here, in the target namespace, which its thread inherits.
    BackendProber prober(options.probe_interval, [&view](Dataplane& d) { return view.plan(d); }, log);
    prober.start();
    auto ran = agent.run(*watch, signal_fd->get(), *lock);
    agent.stop_rollouts();
    prober.stop();
    server->stop();  // before `view`, which its handlers read, goes away
    if (!ran) return ran;
    if (options.detach_on_exit) agent.detach();
    return {};
}

}  // namespace tcpshift
