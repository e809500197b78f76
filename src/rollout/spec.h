// What a rollout is asked to do: move a service's new connections to one subset step by step,
// judging the subset's kernel-measured health against the rest's before each step.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/error.h"

namespace tcpshift {

struct RolloutSpec {
    std::string service;
    std::string canary;              // the subset the rollout moves connections to
    std::vector<uint32_t> steps;     // the canary's share in percent at each step, ascending
    uint64_t interval_ms = 30'000;   // how long each step runs before it is judged
    double max_failure_rate = 0.01;  // of the canary's connections over a step
    double max_rtt_increase = 0.5;   // of the canary's mean RTT over the baseline's
    // An RTT increase this small never fails the gate: loopback RTTs are tens of microseconds,
    // where half again is noise, not a regression.
    uint64_t rtt_slack_us = 1000;
    uint64_t min_connections = 100;  // a step with fewer canary connections waits for more
    // How long a step waits for data past its interval before the rollout is aborted (a canary
    // that takes no connection, or holds them all open, is no canary to promote); 0: ten
    // intervals.
    uint64_t max_wait_ms = 0;

    uint64_t max_wait() const { return max_wait_ms ? max_wait_ms : 10 * interval_ms; }

    bool operator==(const RolloutSpec&) const = default;
};

// "5,10,25,50,100": ascending shares from 1 to 100 percent. Errors name the option and the value.
Result<std::vector<uint32_t>> parse_steps(const std::string& text, const std::string& option = "--steps");
// "1%", "0.5%" or "50%" as a fraction; `option` names the flag in errors. Up to `max` (1 = 100%).
Result<double> parse_percent(const std::string& option, const std::string& text, double max);
// Refuses a service name that cannot name a record file: letters, digits, '.', '_' and '-'
// only, as Kubernetes names are, and not "." or "..".
Result<void> check_service_name(const std::string& service);
// Refuses a spec that cannot run: no step, a zero interval, a canary among no subsets.
Result<void> check_spec(const RolloutSpec& spec);

// Refuses to start a rollout whose canary takes the first step's share or more of `weights`
// (the subsets' weights now): "v2 takes 100% already, not less than the first step's 5%".
Result<void> check_canary_share(const std::map<std::string, uint32_t>& weights, const RolloutSpec& spec);

// The weights of every subset at a step: the canary takes `percent` of 100, and the others
// share the rest in proportion to their starting weights (equally, if those were all 0). The
// weights sum to 100; remainders go to the largest fractions first.
std::map<std::string, uint32_t> step_weights(const std::map<std::string, uint32_t>& start,
                                             const std::string& canary, uint32_t percent);

}  // namespace tcpshift
