#include "rollout/gates.h"

#include <algorithm>
#include <cstdio>

namespace tcpshift {

SubsetFigures SubsetFigures::operator-(const SubsetFigures& earlier) const {
    // Counters only grow while the service's backends keep their ids; one that went back (a
    // backend re-created) counts from 0 again.
    auto since = [](uint64_t now, uint64_t then) { return now >= then ? now - then : now; };
    return {.connections = since(connections, earlier.connections),
            .failures = since(failures, earlier.failures),
            .rtt_count = since(rtt_count, earlier.rtt_count),
            .rtt_sum_us = since(rtt_sum_us, earlier.rtt_sum_us),
            .closed = since(closed, earlier.closed),
            .unanswered = since(unanswered, earlier.unanswered)};
}

SubsetFigures& SubsetFigures::operator+=(const SubsetFigures& more) {
    connections += more.connections;
    failures += more.failures;
    rtt_count += more.rtt_count;
    rtt_sum_us += more.rtt_sum_us;
    closed += more.closed;
    unanswered += more.unanswered;
    return *this;
}

std::map<std::string, SubsetFigures> subset_figures(const PlanService& service, const StatsFacts& facts) {
    std::map<std::string, SubsetFigures> out;
    for (const auto& subset : service.subsets) {
        SubsetFigures& f = out[subset.name];
        for (const auto& b : subset.backends) {
            const BackendFailures failed = facts.backend_failures(b.id);
            const BackendSli sli = facts.backend_sli(b.id);
            f.connections += facts.route(service.id, b.id).opened + (failed.remote ? failed.before_data : 0);
            f.failures += failed.before_data + sli.reset_after_data + sli.reset_without_data;
            f.rtt_count += sli.rtt_us.count;
            f.rtt_sum_us += sli.rtt_us.sum;
            f.closed += sli.duration_us.count;
            f.unanswered += sli.unanswered;
        }
    }
    return out;
}

SubsetFigures baseline_of(const std::map<std::string, SubsetFigures>& subsets, const std::string& canary) {
    SubsetFigures sum;
    for (const auto& [name, figures] : subsets)
        if (name != canary) sum += figures;
    return sum;
}

namespace {

std::string pct(double fraction) {
    char text[32];
    const double p = fraction * 100;
    std::snprintf(text, sizeof(text), p == 0 || p >= 10 ? "%.0f%%" : p >= 1 ? "%.1f%%" : "%.2g%%", p);
    return text;
}

std::string us(double value) {
    char text[32];
    std::snprintf(text, sizeof(text), value < 10'000 ? "%.0f us" : "%.1f ms", value < 10'000 ? value : value / 1000);
    return text;
}

}  // namespace

Verdict judge_step(const RolloutSpec& spec, const SubsetFigures& canary, const SubsetFigures& baseline) {
    using Kind = Verdict::Kind;
    if (canary.connections < spec.min_connections)
        return {Kind::kWait, "connections",
                spec.canary + " has " + std::to_string(canary.connections) + " of the " +
                    std::to_string(spec.min_connections) + " connections a step is judged on" +
                    (canary.connections == 0 ? " (does it listen? see `tcpshift status`)" : "")};
    const std::string failed = spec.canary + " failed " + std::to_string(canary.failures) + " of " +
                               std::to_string(canary.connections) + " connections (" + pct(canary.failure_rate()) + ")";
    if (canary.failure_rate() > spec.max_failure_rate)
        return {Kind::kFail, "failure-rate",
                failed + " > " + pct(spec.max_failure_rate) + "; the baseline failed " + std::to_string(baseline.failures) +
                    " of " + std::to_string(baseline.connections) + " (" + pct(baseline.failure_rate()) + ")"};
    if (canary.closed >= std::min<uint64_t>(spec.min_connections, kMinRtts) && baseline.closed > 0 &&
        canary.unanswered_rate() > baseline.unanswered_rate() + spec.max_failure_rate)
        return {Kind::kFail, "unanswered",
                spec.canary + " wrote nothing on " + std::to_string(canary.unanswered) + " of " +
                    std::to_string(canary.closed) + " closed connections (" + pct(canary.unanswered_rate()) +
                    "), the baseline on " + pct(baseline.unanswered_rate()) + ": more than " + pct(spec.max_failure_rate) +
                    " above it"};
    // A mean of a few RTTs is one slow connection's: the canary's needs as many as the step's
    // connections, up to kMinRtts.
    const uint64_t rtts_needed = std::min<uint64_t>(spec.min_connections, kMinRtts);
    if (canary.rtt_count < rtts_needed || baseline.rtt_count == 0)
        return {Kind::kWait, "rtt",
                canary.rtt_count < rtts_needed
                    ? spec.canary + " has " + std::to_string(canary.rtt_count) + " of the " + std::to_string(rtts_needed) +
                          " closed connections with an RTT its gate needs"
                    : std::string("no closed connection of the baseline has an RTT yet")};
    const double limit = std::max(baseline.mean_rtt_us() * (1 + spec.max_rtt_increase),
                                  baseline.mean_rtt_us() + static_cast<double>(spec.rtt_slack_us));
    const std::string rtt = spec.canary + " mean RTT " + us(canary.mean_rtt_us()) + " against the baseline's " +
                            us(baseline.mean_rtt_us());
    if (canary.mean_rtt_us() > limit)
        return {Kind::kFail, "rtt", rtt + ": more than " + pct(spec.max_rtt_increase) + " (and " + us(spec.rtt_slack_us) +
                                        ") above it"};
    return {Kind::kPass, "", failed + "; " + rtt};
}

}  // namespace tcpshift
