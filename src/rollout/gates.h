// The gates a rollout step must pass: what the kernel measured of the canary's connections
// over the step, against the baseline's (every other subset of the service).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>

#include "compile/plan.h"
#include "report/report.h"
#include "rollout/spec.h"

namespace tcpshift {

// A subset's connections as the kernel counted them since the service's counters began; a
// step's figures are the difference of two readings.
struct SubsetFigures {
    // handshakes completed through the service's frontends, plus, for a connect-time backend,
    // handshakes that failed
    uint64_t connections = 0;
    // closed or reset before data, failed handshakes, resets after data, late silent resets;
    // listen overflows are SYNs, which a client retries, and left out
    uint64_t failures = 0;
    uint64_t rtt_count = 0;   // closed connections whose smoothed RTT was recorded
    uint64_t rtt_sum_us = 0;
    uint64_t closed = 0;      // established connections that closed
    uint64_t unanswered = 0;  // of those, the ones to which the backend wrote nothing

    SubsetFigures operator-(const SubsetFigures& earlier) const;
    SubsetFigures& operator+=(const SubsetFigures& more);
    // Failures are counted as connections close and connections as they open, so a step's
    // failures can outrun its connections by the few that were open when it began.
    double failure_rate() const {
        const uint64_t of = std::max(connections, failures);
        return of ? static_cast<double>(failures) / static_cast<double>(of) : 0;
    }
    double unanswered_rate() const { return closed ? static_cast<double>(std::min(unanswered, closed)) / closed : 0; }
    // 0 with no RTT recorded
    double mean_rtt_us() const { return rtt_count ? static_cast<double>(rtt_sum_us) / rtt_count : 0; }
};

// Each subset's figures, summed over its backends.
std::map<std::string, SubsetFigures> subset_figures(const PlanService& service, const StatsFacts& facts);
// The figures of every subset but the canary, summed.
SubsetFigures baseline_of(const std::map<std::string, SubsetFigures>& subsets, const std::string& canary);

// The RTTs the canary's gate needs at most (fewer when --min-connections is lower).
inline constexpr uint64_t kMinRtts = 30;

struct Verdict {
    enum class Kind {
        kPass,
        kWait,  // too little data to judge: too few canary connections, or no RTT on one side
        kFail,
    };
    Kind kind = Kind::kWait;
    // the gate that failed, or what is awaited: "failure-rate", "unanswered", "rtt", "connections"
    std::string gate;
    std::string reason;  // one line with the figures, e.g. "v2 failed 12 of 230 connections (5.2%) > 1%"
};

// Judges a step: `canary` and `baseline` are their figures over the step. A gate fails only on
// at least `min_connections` canary connections; the RTT gate waits for RTTs on both sides.
// The unanswered gate fails when the canary wrote nothing on a share of its closed connections
// larger than the baseline's by more than max_failure_rate: what clients that half-close after
// their request see of a canary that closes without answering (an upload, where neither side
// answers, passes).
Verdict judge_step(const RolloutSpec& spec, const SubsetFigures& canary, const SubsetFigures& baseline);

}  // namespace tcpshift
