#include "cli/rollout_output.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "rollout/runner.h"

namespace tcpshift {

namespace {

using json = nlohmann::json;

std::string seconds(uint64_t ms) {
    char text[32];
    if (ms >= 120'000)
        std::snprintf(text, sizeof(text), "%llu min %llu s", static_cast<unsigned long long>(ms / 60'000),
                      static_cast<unsigned long long>(ms / 1000 % 60));
    else
        std::snprintf(text, sizeof(text), "%.0f s", ms / 1000.0);
    return text;
}

uint64_t now_ms(const RolloutRecord& r) {
    return r.timeline.empty() ? r.step_started_ms : std::max(r.timeline.back().t_ms, r.step_started_ms);
}

std::string step_text(const RolloutRecord& r) {
    return "step " + std::to_string(r.step + 1) + "/" + std::to_string(r.spec.steps.size()) + " (" + r.spec.canary + " " +
           std::to_string(r.spec.steps[r.step]) + "%)";
}

json event_json(const RolloutRecord& r, const std::string& kind, uint64_t t_ms) {
    json e = {{"event", kind},
              {"service", r.spec.service},
              {"t_ms", t_ms},
              {"phase", phase_name(r.phase)},
              {"step", r.step + 1},
              {"steps", r.spec.steps.size()},
              {"percent", r.spec.steps[r.step]},
              {"weights", step_weights(r.start_weights, r.spec.canary, r.spec.steps[r.step])}};
    if (!r.live.empty()) e["live"] = r.live;
    if (finished(r.phase)) {
        e["outcome"] = r.outcome;
        e["failed_gate"] = r.failed_gate;
        if (r.phase == RolloutPhase::kAborted || r.phase == RolloutPhase::kStopped) e.erase("weights");
        e["weights_now"] = r.phase == RolloutPhase::kAborted ? r.start_weights
                           : r.phase == RolloutPhase::kStopped && !r.timeline.empty()
                               ? r.timeline.back().weights
                               : step_weights(r.start_weights, r.spec.canary, r.spec.steps[r.step]);
    }
    return e;
}

// Each subset's figures over the whole rollout, from its last point.
std::string totals_text(const RolloutRecord& r) {
    if (r.timeline.empty()) return "nothing measured";
    std::string out;
    for (const auto& [name, f] : r.timeline.back().totals) {
        char text[160];
        std::snprintf(text, sizeof(text), "%s%s %llu connections, %llu failed, mean RTT %.0f us", out.empty() ? "" : "; ",
                      name.c_str(), static_cast<unsigned long long>(f.connections),
                      static_cast<unsigned long long>(f.failures), f.mean_rtt_us());
        out += text;
    }
    return out;
}

}  // namespace

std::string live_text(const RolloutRecord& r) {
    const uint64_t in_step = now_ms(r) - r.step_started_ms;
    if (r.phase == RolloutPhase::kPaused) return step_text(r) + ", paused " + seconds(in_step) + " in: " + r.live;
    if (in_step >= r.spec.interval_ms)
        return step_text(r) + ", " + seconds(in_step) + " in, its " + seconds(r.spec.interval_ms) +
               " over, judged as soon as: " + (r.live.empty() ? "measuring" : r.live);
    std::string text = step_text(r) + ", " + seconds(in_step) + " of " + seconds(r.spec.interval_ms);
    const uint64_t step_left = in_step < r.spec.interval_ms ? r.spec.interval_ms - in_step : 0;
    const uint64_t left = step_left + (r.spec.steps.size() - r.step - 1) * r.spec.interval_ms;
    return text + ", at least " + seconds(left) + " left: " + (r.live.empty() ? "measuring" : r.live);
}

void RolloutPrinter::changed(const RolloutRecord& r, const RolloutNote* note) {
    if (json_) {
        out_ << event_json(r, note ? note->kind : "progress", note ? note->t_ms : now_ms(r))
                    .dump(-1, ' ', false, json::error_handler_t::replace)
             << std::endl;
        return;
    }
    if (!note) return live(r);
    if (line_open_) err_ << "\n";
    line_open_ = false;
    char stamp[32];
    std::snprintf(stamp, sizeof(stamp), "[%7.1f s] ", note->t_ms / 1000.0);
    err_ << "rollout " << r.spec.service << " " << stamp << note->text << std::endl;
}

void RolloutPrinter::live(const RolloutRecord& r) {
    const std::string line = "rollout " + r.spec.service + ": " + live_text(r);
    if (in_place_) {
        err_ << "\r\033[K" << line << std::flush;
        line_open_ = true;
        return;
    }
    const uint64_t t = now_ms(r);
    if (last_live_ms_ != 0 && t < last_live_ms_ + 10'000) return;
    last_live_ms_ = t;
    err_ << line << std::endl;
}

void RolloutPrinter::report(const RolloutRecord& r) {
    if (line_open_) err_ << "\n";
    line_open_ = false;
    if (json_) return;
    out_ << "rollout " << r.spec.service << " to " << r.spec.canary << ": " << phase_name(r.phase) << "\n"
         << "  " << r.outcome << "\n"
         << "  reached " << step_text(r) << " after " << seconds(now_ms(r)) << "\n"
         << "  over the rollout: " << totals_text(r) << "\n";
}

void print_rollout_status(const RolloutRecord& r, bool runner_alive, std::ostream& out) {
    out << "rollout " << r.spec.service << " to " << r.spec.canary << ": " << phase_name(r.phase);
    if (!finished(r.phase) && !runner_alive && r.agent)
        out << ", held at " << step_text(r) << ": no agent runs it now; an agent that declares it takes it over, "
            << "`tcpshift rollout abort " << r.spec.service << "` puts back " << weights_text(r.start_weights);
    else if (!finished(r.phase) && !runner_alive)
        out << ", held at " << step_text(r) << ": its runner (pid " << r.pid << ") is gone; `tcpshift rollout resume "
            << r.spec.service << "` takes it over, `abort` puts back " << weights_text(r.start_weights);
    out << "\n";
    if (finished(r.phase))
        out << "  " << r.outcome << "\n";
    else
        out << "  " << live_text(r) << "\n";
    out << "  started from " << weights_text(r.start_weights) << "; steps";
    for (uint32_t s : r.spec.steps) out << " " << s << "%";
    out << ", each judged after " << seconds(r.spec.interval_ms) << " on at least " << r.spec.min_connections
        << " connections\n  over the rollout: " << totals_text(r) << "\n";
    for (const auto& n : r.notes) {
        char stamp[32];
        std::snprintf(stamp, sizeof(stamp), "[%7.1f s] ", n.t_ms / 1000.0);
        out << "  " << stamp << n.text << "\n";
    }
}

}  // namespace tcpshift
