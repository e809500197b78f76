#include "rollout/runner.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace tcpshift {

uint64_t system_unix_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

uint64_t system_steady_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

void sleep_unless(uint64_t ms, const std::function<bool()>& stop) {
    for (uint64_t slept = 0; slept < ms && !stop(); slept += 50)
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min<uint64_t>(50, ms - slept)));
}

std::string weights_text(const std::map<std::string, uint32_t>& weights) {
    std::string out;
    for (const auto& [name, weight] : weights) out += (out.empty() ? "" : " ") + name + "=" + std::to_string(weight);
    return out;
}

namespace {

constexpr size_t kMaxTimeline = 2000;

// What a tick found: go on with the step, or the step (and the rollout) ended.
enum class Tick { kGoOn, kEnded };

class Runner {
   public:
    Runner(RolloutRecord& record, const RolloutIo& io) : r_(record), io_(io) {}

    Result<void> run() {
        if (r_.timeline.empty())
            if (auto first = io_.read()) record_point(*first, true);
        if (r_.aborting) return abort(r_.failed_gate, r_.live);  // a runner died putting the start back
        if (r_.step_applied) {
            auto now = io_.read();
            if (!now) return fail(now.error());
            if (now->weights != step_weights_now()) {
                end(RolloutPhase::kStopped, "stop",
                    "the weights were changed while the rollout was held, to " + weights_text(now->weights) +
                        "; it stopped at step " + step_name() + " and left them");
                return {};
            }
            note("takeover", "taking over at step " + step_name() + "; the step is judged again from now");
        }
        while (!finished(r_.phase)) {
            if (auto ok = run_step(); !ok) return ok;
            if (held_) return {};
            if (finished(r_.phase)) break;
            if (r_.step + 1 == r_.spec.steps.size()) {
                end(RolloutPhase::kPromoted, "promote",
                    r_.spec.canary + " takes " + std::to_string(r_.spec.steps.back()) + "%: every step passed");
                break;
            }
            ++r_.step;
            r_.step_applied = false;
        }
        // The weights as the rollout left them, for the timeline's end.
        if (auto last = io_.read()) record_point(*last, true);
        return {};
    }

   private:
    uint64_t t() const {
        const uint64_t now = io_.now_unix_ms();
        return now > r_.started_unix_ms ? now - r_.started_unix_ms : 0;
    }
    bool step_over() const { return io_.steady_ms() >= step_steady_ms_ + r_.spec.interval_ms; }
    std::string step_name() const {
        return std::to_string(r_.step + 1) + "/" + std::to_string(r_.spec.steps.size()) + " (" + r_.spec.canary + " " +
               std::to_string(r_.spec.steps[r_.step]) + "%)";
    }
    std::map<std::string, uint32_t> step_weights_now() const {
        return step_weights(r_.start_weights, r_.spec.canary, r_.spec.steps[r_.step]);
    }

    void note(const std::string& kind, const std::string& text) {
        r_.notes.push_back({.t_ms = t(), .kind = kind, .text = text});
        io_.changed(r_, &r_.notes.back());
    }
    void end(RolloutPhase phase, const std::string& kind, const std::string& outcome) {
        r_.phase = phase;
        r_.outcome = outcome;
        note(kind, outcome);
    }

    void record_point(const Reading& now, bool always = false) {
        const uint64_t every = std::max(io_.tick_ms, r_.spec.interval_ms / 20);
        if (!always && !r_.timeline.empty() && t() < r_.timeline.back().t_ms + every) return;
        RolloutPoint point{.t_ms = t(), .weights = now.weights};
        for (const auto& [name, figures] : now.figures) point.totals[name] = figures - r_.origin[name];
        r_.timeline.push_back(std::move(point));
        // A step that waits long, or a long pause, thins the older half: the record stays small.
        if (r_.timeline.size() > kMaxTimeline) {
            std::vector<RolloutPoint> thinned;
            for (size_t i = 0; i < r_.timeline.size(); ++i)
                if (i % 2 == 0 || i >= r_.timeline.size() / 2) thinned.push_back(std::move(r_.timeline[i]));
            r_.timeline = std::move(thinned);
        }
    }

    // Puts the starting weights back, trying again for restore_for_ms; the record says it is
    // aborting first, so that a runner that takes it over only finishes that.
    Result<void> abort(const std::string& gate, const std::string& why) {
        r_.aborting = true;
        r_.failed_gate = gate;
        r_.live = why;
        io_.changed(r_, nullptr);
        const uint64_t until = io_.steady_ms() + io_.restore_for_ms;
        for (auto ok = io_.set_weights(r_.start_weights); !ok; ok = io_.set_weights(r_.start_weights)) {
            if (io_.steady_ms() >= until) return ok;
            io_.sleep_ms(io_.tick_ms);
        }
        r_.aborting = false;
        end(RolloutPhase::kAborted, "abort",
            why + "; at step " + step_name() + ", back to " + weights_text(r_.start_weights));
        return {};
    }

    // Reads the kernel, records the point, and ends the rollout if its weights were changed
    // by someone else or a user asked to abort. Pauses and resumes as asked.
    Result<Tick> tick(Reading& step_start, Reading& reading) {
        io_.sleep_ms(io_.tick_ms);
        auto now = io_.read();
        if (!now) return fail(now.error());
        reading = *now;
        record_point(*now);
        if (now->weights != step_weights_now()) {
            end(RolloutPhase::kStopped, "stop",
                "the weights were changed outside the rollout, to " + weights_text(now->weights) +
                    "; the rollout stopped at step " + step_name() + " and left them");
            return Tick::kEnded;
        }
        const std::optional<std::string> request = io_.control();
        if (request == "hold") {
            held_ = true;
            note("hold", "held at step " + step_name() + ": its runner stops; the weights stay");
            return Tick::kEnded;
        }
        if (request && request->starts_with("abort")) {
            const std::string by = *request == "abort" ? "`tcpshift rollout abort`" : request->substr(6);
            if (auto ok = abort("", "aborted by " + by); !ok) return fail(ok.error());
            return Tick::kEnded;
        }
        if (request == "pause" && r_.phase == RolloutPhase::kRunning) {
            r_.phase = RolloutPhase::kPaused;
            note("pause", "paused at step " + step_name() + "; `tcpshift rollout resume " + r_.spec.service + "` goes on");
        } else if (request == "resume" && r_.phase == RolloutPhase::kPaused) {
            r_.phase = RolloutPhase::kRunning;
            step_start = *now;
            r_.step_started_ms = t();
            step_steady_ms_ = io_.steady_ms();
            note("resume", "resumed at step " + step_name() + "; the step is judged again from now");
        }
        return Tick::kGoOn;
    }

    Verdict judgement(const Reading& start, const Reading& now) const {
        const std::string& canary = r_.spec.canary;
        const auto of = [&](const Reading& reading) {
            const auto it = reading.figures.find(canary);
            return it == reading.figures.end() ? SubsetFigures{} : it->second;
        };
        const SubsetFigures canary_step = of(now) - of(start);
        SubsetFigures baseline = baseline_of(now.figures, canary) - baseline_of(start.figures, canary);
        if (baseline.rtt_count < kBaselineRttsPerStep) {
            const SubsetFigures whole = baseline_of(now.figures, canary) - baseline_of(r_.origin, canary);
            baseline.rtt_count = whole.rtt_count;
            baseline.rtt_sum_us = whole.rtt_sum_us;
        }
        return judge_step(r_.spec, canary_step, baseline);
    }

    Result<void> run_step() {
        const auto weights = step_weights_now();
        if (auto ok = io_.set_weights(weights); !ok) return ok;
        if (!r_.step_applied) note("step", "step " + step_name() + ": " + weights_text(weights));
        r_.step_applied = true;
        r_.step_started_ms = t();
        step_steady_ms_ = io_.steady_ms();
        auto start = io_.read();
        if (!start) return fail(start.error());
        record_point(*start, true);
        Reading now;
        while (true) {
            auto ticked = tick(*start, now);
            if (!ticked) return fail(ticked.error());
            if (*ticked == Tick::kEnded) return {};
            const Verdict verdict = judgement(*start, now);
            r_.live = verdict.reason;
            if (r_.phase == RolloutPhase::kPaused || !step_over()) {
                io_.changed(r_, nullptr);
                continue;
            }
            if (verdict.kind == Verdict::Kind::kFail) return abort(verdict.gate, verdict.gate + " gate failed: " + verdict.reason);
            if (verdict.kind == Verdict::Kind::kPass) {
                note("pass", "step " + step_name() + " passed: " + verdict.reason);
                return {};
            }
            if (io_.steady_ms() >= step_steady_ms_ + r_.spec.interval_ms + r_.spec.max_wait())
                return abort("thin-data", "waited " + std::to_string(r_.spec.max_wait() / 1000) +
                                              " s past the step's interval for data to judge: " + verdict.reason);
            io_.changed(r_, nullptr);
        }
    }

    RolloutRecord& r_;
    const RolloutIo& io_;
    bool held_ = false;  // asked to stop where it is ("hold"): its process is going away
    uint64_t step_steady_ms_ = 0;  // when the step began, or resumed, on the steady clock
};

}  // namespace

Result<void> run_rollout(RolloutRecord& record, const RolloutIo& io) { return Runner(record, io).run(); }

}  // namespace tcpshift
