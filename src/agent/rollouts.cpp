#include "agent/rollouts.h"

#include <chrono>
#include <unistd.h>

#include "apply/reweight.h"
#include "rollout/runner.h"
#include "rollout/service_io.h"

namespace tcpshift {

namespace {

// The weights a record's rollout left installed; none when it installed nothing or was
// stopped by a change from elsewhere.
std::optional<Weights> installed_by(const RolloutRecord& r) {
    switch (r.phase) {
        case RolloutPhase::kRunning:
        case RolloutPhase::kPaused:
            if (!r.step_applied) return std::nullopt;
            return step_weights(r.start_weights, r.spec.canary, r.spec.steps[r.step]);
        case RolloutPhase::kPromoted: return step_weights(r.start_weights, r.spec.canary, r.spec.steps.back());
        case RolloutPhase::kAborted: return r.start_weights;
        case RolloutPhase::kStopped: return std::nullopt;
    }
    return std::nullopt;
}

}  // namespace

Result<NextSet> with_rollout_weights(NextSet next, const std::map<std::string, Weights>& overlay,
                                     const PlanLimits& limits, const NetnsId& netns, Log& log) {
    for (const auto& [service, weights] : overlay) {
        auto plan = compile_resources(next.resources, next.state.ids, nullptr, limits);
        if (!plan) return next;  // the transaction reports the error itself
        const Applied staged{.state = next.state, .resources = next.resources, .plan = std::move(*plan), .limits = limits};
        auto shifted = reweighted(staged, service, weights, netns);
        if (!shifted) {
            log("warn", "rollout " + service + ": its weights are not kept: " + shifted.error().message);
            continue;
        }
        next = std::move(*shifted);
    }
    return next;
}

std::map<std::string, Weights> AgentRollouts::overlay(const std::vector<RolloutSpec>& specs) {
    std::lock_guard lock(mutex_);
    std::map<std::string, Weights> declared;
    for (const auto& spec : specs) {
        if (!running_.contains(spec.service)) {
            auto record = load_record(record_path(netns_.inode, spec.service));
            std::optional<Weights> weights;
            if (record && *record && ((*record)->spec == spec || finished((*record)->phase)))
                weights = installed_by(**record);
            if (weights && overlay_[spec.service] != *weights)
                log_("info", "rollout " + spec.service + " (" + phase_name((*record)->phase) + ") holds " +
                                 weights_text(*weights) + " over the configuration's weights");
            if (weights)
                overlay_[spec.service] = *weights;
            else
                overlay_.erase(spec.service);
        }
        if (auto it = overlay_.find(spec.service); it != overlay_.end()) declared.insert(*it);
    }
    overlay_ = declared;
    return declared;
}

void AgentRollouts::log_once(const RolloutSpec& spec, const char* level, const std::string& message) {
    std::string& last = logged_[spec.service];
    if (last == message) return;
    last = message;
    log_(level, "rollout " + spec.service + ": " + message);
}

void AgentRollouts::reconcile(const std::vector<RolloutSpec>& specs) {
    {
        std::lock_guard lock(mutex_);
        for (auto it = running_.begin(); it != running_.end();) {
            const bool declared =
                std::any_of(specs.begin(), specs.end(), [&](const RolloutSpec& s) { return s.service == it->first; });
            if (it->second->done || !declared) {
                if (!declared) it->second->hold = true;
                mutex_.unlock();
                it->second->thread.join();
                mutex_.lock();
                it = running_.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (const auto& spec : specs) {
        {
            std::lock_guard lock(mutex_);
            if (running_.contains(spec.service)) {
                if (running_.at(spec.service)->spec != spec)
                    log_once(spec, "warn", "its spec changed; the rollout under way goes on as it began, and the change "
                                           "is a new rollout once it ends");
                continue;
            }
        }
        auto loaded = load_record(record_path(netns_.inode, spec.service));
        if (!loaded) {
            log_once(spec, "error", loaded.error().message);
            continue;
        }
        std::optional<RolloutRecord>& record = *loaded;
        if (record && record->spec == spec && finished(record->phase)) continue;  // it has run
        if (record && record->spec == spec) {
            log_("info", "rollout " + spec.service + ": taking over at step " + std::to_string(record->step + 1));
            record->pid = ::getpid();
            record->agent = true;
            start(std::move(*record));
            continue;
        }
        start_fresh(spec);
    }
}

void AgentRollouts::start_fresh(const RolloutSpec& spec) {
    auto now = read_service("", spec.service);
    if (!now) {
        log_once(spec, "error", "cannot start: " + now.error().message);
        return;
    }
    if (auto ok = check_canary_share(now->weights, spec); !ok) {
        log_once(spec, "warn", "not started: " + ok.error().message + " (a rollout that ended left " +
                                   weights_text(now->weights) + ")");
        return;
    }
    start({.spec = spec, .start_weights = now->weights, .origin = now->figures, .agent = true, .pid = ::getpid(),
           .started_unix_ms = system_unix_ms()});
}

void AgentRollouts::start(RolloutRecord record) {
    std::lock_guard lock(mutex_);
    auto running = std::make_unique<Running>();
    running->spec = record.spec;
    Running* slot = running.get();
    const std::string service = record.spec.service;
    running_[service] = std::move(running);
    slot->thread = std::thread([this, slot, r = std::move(record)]() mutable { run(std::move(r), slot); });
}

void AgentRollouts::run(RolloutRecord record, Running* running) {
    const std::string service = record.spec.service;
    const std::string path = record_path(netns_.inode, service), control = control_path(netns_.inode, service);
    const auto held = [&] {
        std::lock_guard lock(mutex_);
        return running->hold;
    };
    auto runner_lock = take_runner_lock(lock_path(netns_.inode, service));
    if (!runner_lock) {
        log_("warn", "rollout " + service + " is not run here: " +
                         (runner_lock.error().is(EWOULDBLOCK) ? std::string("another runner (`tcpshift rollout`) has it")
                                                              : runner_lock.error().message));
        std::lock_guard lock(mutex_);
        running->done = true;
        return;
    }
    clear_control(control);
    const RolloutIo io{
        .read = [&] { return read_service("", service); },
        .set_weights =
            [&](const Weights& weights) -> Result<void> {
                std::lock_guard apply(apply_mutex_);
                {
                    std::lock_guard lock(mutex_);
                    overlay_[service] = weights;
                }
                auto dataplane = Dataplane::open("", Dataplane::Access::kExclusive);
                if (!dataplane) return fail(dataplane.error());
                return install_weights(*dataplane, service, weights, log_progress(log_));
            },
        .now_unix_ms = system_unix_ms,
        .steady_ms = system_steady_ms,
        .sleep_ms = [&](uint64_t ms) { sleep_unless(ms, held); },
        .control = [&]() -> std::optional<std::string> {
            if (held()) return "hold";
            return take_control(control);
        },
        .changed =
            [&](const RolloutRecord& r, const RolloutNote* note) {
                if (auto ok = save_record(path, r); !ok) log_("warn", "rollout " + service + ": " + ok.error().message);
                if (note) log_(note->kind == "abort" || note->kind == "stop" ? "warn" : "info", "rollout " + service + ": " + note->text);
            },
    };
    auto ran = run_rollout(record, io);
    if (auto ok = save_record(path, record); !ok) log_("warn", "rollout " + service + ": " + ok.error().message);
    if (!ran) log_("error", "rollout " + service + " holds at step " + std::to_string(record.step + 1) + ": " + ran.error().message);
    std::lock_guard lock(mutex_);
    running->done = true;
}

void AgentRollouts::stop() {
    std::map<std::string, std::unique_ptr<Running>> running;
    {
        std::lock_guard lock(mutex_);
        for (auto& [name, r] : running_) r->hold = true;
        running.swap(running_);
    }
    for (auto& [name, r] : running)
        if (r->thread.joinable()) r->thread.join();
}

}  // namespace tcpshift
