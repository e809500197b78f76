// tcpshift rollout: a metric-gated canary of one service on this host. `rollout SERVICE --to
// v2 --steps ...` runs in the foreground; status, pause, resume and abort reach it through
// its record under /run/tcpshift/<netns inode>/rollouts/.
#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <memory>
#include <thread>
#include <unistd.h>

#include "apply/reweight.h"
#include "apply/session.h"
#include "cli/rollout_output.h"
#include "cli/verbs.h"
#include "config/duration.h"
#include "rollout/plot.h"
#include "rollout/runner.h"
#include "rollout/service_io.h"

namespace tcpshift {

namespace {

struct RolloutCommand {
    TargetOptions target;
    std::string service;
    std::string to, steps = "5,10,25,50,100", interval = "30s";
    std::string max_failure_rate = "1%", max_rtt_increase = "50%", rtt_slack = "1ms";
    uint64_t min_connections = 100;
    std::string max_wait;  // empty: ten intervals
    std::string plot;
    bool json = false;
    bool force = false;
};

std::atomic<int> g_interrupted{0};  // the signal that asks for an abort; 0: none

// Ctrl-C, a closed terminal or a kill end a foreground rollout as `rollout abort` does; a
// closed output (SIGPIPE, ignored from then on, as output is flushed at exit) does not stop it
// before it has put the weights back and saved.
class AbortOnSignals {
   public:
    AbortOnSignals() {
        struct sigaction action{};
        action.sa_handler = [](int signal) { g_interrupted = signal; };
        for (size_t i = 0; i < std::size(kSignals); ++i) {
            sigaction(kSignals[i], nullptr, &old_[i]);
            // One ignored already stays so: `nohup tcpshift rollout ...` outlives its terminal.
            if (old_[i].sa_handler != SIG_IGN) sigaction(kSignals[i], &action, nullptr);
        }
        struct sigaction ignore{};
        ignore.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &ignore, nullptr);
    }
    ~AbortOnSignals() {
        for (size_t i = 0; i < std::size(kSignals); ++i) sigaction(kSignals[i], &old_[i], nullptr);
    }

   private:
    static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction old_[3];
};

Result<void> install_weights(const RolloutCommand& cmd, const std::map<std::string, uint32_t>& weights, Streams io) {
    const Progress warnings = [&io](const Event& e) {
        if (e.kind == Event::Kind::kWarning) io.err << "warning: " << e.text << "\n";
    };
    auto dataplane = open_session("rollout", cmd.target, config_access(cmd.force), warnings);
    if (!dataplane) return fail(dataplane.error());
    return install_weights(*dataplane, cmd.service, weights, warnings);
}

Result<uint64_t> netns_inode(const TargetOptions& target) {
    auto netns = enter_target(target);
    if (!netns) return fail(netns.error());
    return netns->netns.inode;
}

// Runs `record` to its end in the foreground, saving it at each tick; the exit status says how
// it ended.
Result<void> drive(const RolloutCommand& cmd, RolloutRecord& record, uint64_t inode, Streams io) {
    const std::string path = record_path(inode, cmd.service), control = control_path(inode, cmd.service);
    clear_control(control);  // a request left for a runner that has gone is not this one's
    RolloutPrinter printer(io.out, io.err, cmd.json, &io.err == &std::cerr && ::isatty(STDERR_FILENO));
    std::optional<Error> save_error;
    const AbortOnSignals signals;
    const RolloutIo rollout_io{
        .read = [&] { return read_service(cmd.target.netns, cmd.service); },
        .set_weights = [&](const auto& weights) { return install_weights(cmd, weights, io); },
        .now_unix_ms = system_unix_ms,
        .steady_ms = system_steady_ms,
        .sleep_ms = [](uint64_t ms) { sleep_unless(ms, [] { return g_interrupted != 0; }); },
        .control = [&]() -> std::optional<std::string> {
            if (const int signal = g_interrupted.exchange(0)) return std::string("abort:") + sigabbrev_np(signal);
            return take_control(control);
        },
        .changed =
            [&](const RolloutRecord& r, const RolloutNote* note) {
                if (auto ok = save_record(path, r); !ok && !save_error) save_error = ok.error();
                printer.changed(r, note);
            },
    };
    auto ran = run_rollout(record, rollout_io);
    if (auto ok = save_record(path, record); !ok) save_error = ok.error();
    printer.report(record);
    if (!cmd.plot.empty())
        if (auto ok = write_plot(cmd.plot, record); !ok) io.err << "tcpshift: " << ok.error().message << "\n";
    if (!ran)
        return fail(system_error("rollout " + cmd.service + " holds at step " + std::to_string(record.step + 1) + ": " +
                                 ran.error().message + "; `tcpshift rollout resume " + cmd.service + "` goes on"));
    if (save_error) io.err << "warning: the rollout's record was not saved: " << save_error->message << "\n";
    if (record.phase == RolloutPhase::kPromoted) return {};
    return fail(Error{.kind = ErrorKind::kAborted,
                      .message = "rollout " + cmd.service + " " + phase_name(record.phase) + ": " + record.outcome});
}

Result<RolloutSpec> spec_of(const RolloutCommand& cmd) {
    RolloutSpec spec{.service = cmd.service, .canary = cmd.to, .min_connections = cmd.min_connections};
    auto steps = parse_steps(cmd.steps);
    if (!steps) return fail(steps.error());
    spec.steps = *steps;
    auto interval = parse_duration_ms(cmd.interval);
    if (!interval) return fail(config_error("--interval " + cmd.interval + ": " + interval.error().message));
    spec.interval_ms = *interval;
    if (!cmd.max_wait.empty()) {
        auto wait = parse_duration_ms(cmd.max_wait);
        if (!wait || *wait == 0)
            return fail(config_error("--max-wait " + cmd.max_wait + ": " + (wait ? "give a duration above 0" : wait.error().message)));
        spec.max_wait_ms = *wait;
    }
    auto slack = parse_duration_ms(cmd.rtt_slack);
    if (!slack) return fail(config_error("--rtt-slack " + cmd.rtt_slack + ": " + slack.error().message));
    spec.rtt_slack_us = *slack * 1000;
    auto failures = parse_percent("--max-failure-rate", cmd.max_failure_rate, 1);
    if (!failures) return fail(failures.error());
    spec.max_failure_rate = *failures;
    auto rtt = parse_percent("--max-rtt-increase", cmd.max_rtt_increase, 100);
    if (!rtt) return fail(rtt.error());
    spec.max_rtt_increase = *rtt;
    if (auto ok = check_spec(spec); !ok) return fail(ok.error());
    return spec;
}

// The runner's lock of the service's rollout; refused while another runner holds it.
Result<Fd> runner_lock(uint64_t inode, const std::string& service) {
    auto lock = take_runner_lock(lock_path(inode, service));
    if (!lock && lock.error().is(EWOULDBLOCK))
        return fail(system_error("a rollout of " + service + " runs; see `tcpshift rollout status " + service + "`"));
    return lock;
}

// Refuses to start over a rollout of the service that has not ended.
Result<void> check_no_rollout(const std::string& path, const std::string& service) {
    auto existing = load_record(path);
    if (!existing) return fail(existing.error());
    if (!*existing || finished((*existing)->phase)) return {};
    return fail(system_error("a rollout of " + service + " holds at step " + std::to_string((*existing)->step + 1) +
                             " (its runner is gone): `tcpshift rollout resume " + service +
                             "` takes it over, `tcpshift rollout abort " + service + "` ends it"));
}

Result<void> run_start(const RolloutCommand& cmd, Streams io) {
    if (cmd.to.empty()) return fail(config_error("rollout " + cmd.service + ": --to SUBSET names the canary"));
    auto spec = spec_of(cmd);
    if (!spec) return fail(spec.error());
    if (!cmd.plot.empty())
        if (auto ok = check_plot_path(cmd.plot); !ok) return ok;
    if (auto ok = require_root("rollout"); !ok) return ok;
    auto inode = netns_inode(cmd.target);
    if (!inode) return fail(inode.error());
    const std::string path = record_path(*inode, cmd.service);
    auto lock = runner_lock(*inode, cmd.service);
    if (!lock) return fail(lock.error());
    if (auto ok = check_no_rollout(path, cmd.service); !ok) return ok;
    auto start = read_service(cmd.target.netns, cmd.service);
    if (!start) return fail(config_error("rollout: " + start.error().message));
    if (!start->weights.contains(cmd.to)) {
        std::string known;
        for (const auto& [name, w] : start->weights) known += (known.empty() ? "" : ", ") + name;
        return fail(config_error("rollout: service \"" + cmd.service + "\" has no subset \"" + cmd.to + "\"; its subsets: " + known));
    }
    if (start->weights.size() < 2)
        return fail(config_error("rollout: service \"" + cmd.service + "\" has one subset; a canary needs a baseline"));
    if (auto ok = check_canary_share(start->weights, *spec); !ok)
        return fail(config_error("rollout " + cmd.service + ": " + ok.error().message + "; is it the canary? (`tcpshift status`)"));
    RolloutRecord record{.spec = *spec, .start_weights = start->weights, .origin = start->figures, .pid = ::getpid(),
                         .started_unix_ms = system_unix_ms()};
    if (auto ok = save_record(path, record); !ok) return ok;
    return drive(cmd, record, *inode, io);
}


struct ControlCommand {
    std::string action;  // status, pause, resume, abort
    std::string service;
    RolloutCommand run;  // --netns, --json, --plot, --force: for status, and a resume that takes over
};

// Waits, up to 10 s, for the runner to act on a request.
Result<RolloutRecord> await_runner(const std::string& path, const std::function<bool(const RolloutRecord&)>& done) {
    for (int i = 0; i < 200; ++i) {
        auto record = load_record(path);
        if (!record) return fail(record.error());
        if (*record && done(**record)) return **record;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return fail(system_error("the rollout's runner did not answer within 10 s"));
}

// abort, pause or resume, with the runner alive: asks it, and waits for its answer.
Result<void> ask_runner(const ControlCommand& c, uint64_t inode, Streams io) {
    const std::string path = record_path(inode, c.service);
    if (auto ok = send_control(control_path(inode, c.service), c.action); !ok) return ok;
    const auto done = [&](const RolloutRecord& r) {
        if (c.action == "abort") return finished(r.phase);
        if (c.action == "pause") return r.phase == RolloutPhase::kPaused || finished(r.phase);
        return r.phase != RolloutPhase::kPaused;
    };
    auto record = await_runner(path, done);
    if (!record) return fail(record.error());
    io.out << "rollout " << c.service << ": " << phase_name(record->phase) << " ("
           << (record->notes.empty() ? "" : record->notes.back().text) << ")\n";
    return {};
}

// abort or resume of a rollout whose runner is gone: this process acts for it.
Result<void> act_for_runner(const ControlCommand& c, RolloutRecord& record, uint64_t inode, Streams io) {
    RolloutCommand cmd = c.run;
    cmd.service = c.service;
    record.pid = ::getpid();
    if (c.action == "resume") {
        record.phase = RolloutPhase::kRunning;
        return drive(cmd, record, inode, io);
    }
    if (auto ok = install_weights(cmd, record.start_weights, io); !ok) return ok;
    record.phase = RolloutPhase::kAborted;
    record.outcome = "aborted by `tcpshift rollout abort` while held at step " + std::to_string(record.step + 1) +
                     "; back to " + weights_text(record.start_weights);
    record.notes.push_back({.t_ms = system_unix_ms() - record.started_unix_ms, .kind = "abort", .text = record.outcome});
    if (auto ok = save_record(record_path(inode, c.service), record); !ok) return ok;
    io.out << "rollout " << c.service << ": " << record.outcome << "\n";
    return {};
}

Result<void> run_control(const ControlCommand& c, Streams io) {
    if (auto ok = check_service_name(c.service); !ok) return ok;
    if (c.action != "status")
        if (auto ok = require_root("rollout " + c.action); !ok) return ok;
    auto inode = netns_inode(c.run.target);
    if (!inode) return fail(inode.error());
    auto record = load_record(record_path(*inode, c.service));
    if (!record) return fail(record.error());
    if (!*record)
        return fail(config_error("no rollout of \"" + c.service + "\" in network namespace " + std::to_string(*inode) +
                                 "; start one with `tcpshift rollout " + c.service + " --to SUBSET`"));
    RolloutRecord& r = **record;
    const bool alive = runner_holds(lock_path(*inode, c.service));
    if (c.action == "status") {
        if (!c.run.plot.empty())
            if (auto ok = write_plot(c.run.plot, r); !ok) return ok;
        if (c.run.json) {
            nlohmann::json doc = record_json(r);
            doc["runner_alive"] = alive;
            io.out << doc.dump(2) << "\n";
        } else {
            print_rollout_status(r, alive, io.out);
        }
        return {};
    }
    if (finished(r.phase))
        return fail(config_error("rollout " + c.service + " has ended (" + phase_name(r.phase) + "): " + r.outcome));
    if (alive) return ask_runner(c, *inode, io);
    if (c.action == "resume" && r.agent)
        return fail(system_error("rollout " + c.service + " is declared for the namespace's agent (TrafficRollout): "
                                 "start the agent, which takes it over at its step; `abort` works from here"));
    if (c.action == "pause")
        return fail(config_error("rollout " + c.service + " already holds at step " + std::to_string(r.step + 1) +
                                 ": its runner is gone"));
    auto lock = take_runner_lock(lock_path(*inode, c.service));
    if (!lock && lock.error().is(EWOULDBLOCK)) return ask_runner(c, *inode, io);  // a runner came meanwhile
    if (!lock) return fail(lock.error());
    auto fresh = load_record(record_path(*inode, c.service));  // as that runner may have left it
    if (!fresh) return fail(fresh.error());
    if (!*fresh || finished((*fresh)->phase))
        return fail(config_error("rollout " + c.service + " has ended meanwhile"));
    return act_for_runner(c, **fresh, *inode, io);
}

}  // namespace

// status, pause, resume and abort, as subcommands of `rollout`.
Action add_rollout_control(CLI::App& command) {
    auto c = std::make_shared<ControlCommand>();
    static constexpr std::pair<const char*, const char*> kActions[] = {
        {"status", "where a rollout is: its step, the gates' figures, its notes (--json, --plot FILE.svg)"},
        {"pause", "hold the rollout at its step until `resume`"},
        {"resume", "go on with a paused rollout, or take over one whose runner is gone (in the foreground)"},
        {"abort", "end the rollout and put its starting weights back"},
    };
    std::vector<CLI::App*> subs;
    for (const auto& [name, help] : kActions) {
        CLI::App* sub = command.add_subcommand(name, help);
        sub->add_option("service", c->service, "service name")->required();
        add_netns_option(*sub, c->run.target);
        if (std::string_view(name) == "status" || std::string_view(name) == "resume") {
            add_json_flag(*sub, c->run.json);
            sub->add_option("--plot", c->run.plot, "draw the timeline into FILE.svg");
        }
        if (std::string_view(name) == "resume" || std::string_view(name) == "abort") add_force_option(*sub, c->run.force);
        subs.push_back(sub);
    }
    return [c, subs](Streams io) -> Result<void> {
        for (CLI::App* sub : subs)
            if (sub->parsed()) c->action = sub->get_name();
        return run_control(*c, io);
    };
}

Action add_rollout(CLI::App& command) {
    auto cmd = std::make_shared<RolloutCommand>();
    command.add_option("service", cmd->service, "service name, as `status` shows it");
    command.add_option("--to", cmd->to, "the canary: the subset the rollout moves new connections to");
    command.add_option("--steps", cmd->steps, "the canary's share at each step, in percent, rising")->capture_default_str();
    command.add_option("--interval", cmd->interval, "how long each step runs before it is judged")->capture_default_str();
    command.add_option("--max-failure-rate", cmd->max_failure_rate,
                       "the canary's failed connections over a step (reset before or after data, failed handshake)")
        ->capture_default_str();
    command.add_option("--max-rtt-increase", cmd->max_rtt_increase,
                       "the canary's mean smoothed RTT over a step, above the baseline's")
        ->capture_default_str();
    command.add_option("--rtt-slack", cmd->rtt_slack, "an RTT increase this small never fails (loopback RTTs are microseconds)")
        ->capture_default_str();
    command.add_option("--min-connections", cmd->min_connections,
                       "a step is judged on at least this many canary connections; it waits for them")
        ->check(CLI::Range(uint64_t{1}, uint64_t{1'000'000'000}))
        ->capture_default_str();
    command.add_option("--max-wait", cmd->max_wait,
                       "how long a step may wait for data past its interval before the rollout aborts (default: ten "
                       "intervals)");
    command.add_option("--plot", cmd->plot, "draw the timeline into FILE.svg when the rollout ends");
    add_json_flag(command, cmd->json);
    add_force_option(command, cmd->force);
    add_netns_option(command, cmd->target);
    Action control = add_rollout_control(command);
    return [cmd, control, &command](Streams io) -> Result<void> {
        if (command.get_subcommands().size() == 1) return control(io);
        if (cmd->service.empty()) return fail(config_error("rollout: name the service, e.g. `tcpshift rollout tcp-echo --to v2`"));
        return run_start(*cmd, io);
    };
}

}  // namespace tcpshift
