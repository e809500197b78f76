// The rollout a configuration declares for the agent to run:
//
//   apiVersion: tcpshift.io/v1alpha1
//   kind: TrafficRollout
//   metadata: {name: tcp-echo-v2}
//   spec:
//     service: tcp-echo          # a service of the same configuration
//     to: v2                     # its canary subset
//     steps: [5, 10, 25, 50, 100]
//     interval: 30s
//     maxFailureRate: 1%
//     maxRttIncrease: 50%
//     rttSlack: 1ms
//     minConnections: 100
//
// Every field but service and to has the default of `tcpshift rollout`.
#pragma once

#include <vector>

#include "compile/plan.h"
#include "config/config.h"
#include "rollout/spec.h"

namespace tcpshift {

inline constexpr const char* kRolloutKind = "TrafficRollout";

// Errors cite file:line and the field.
Result<RolloutSpec> parse_traffic_rollout(const Resource& r);
// A rollout of a configuration, and where it was declared ("rollout.yaml:3").
struct DeclaredRollout {
    RolloutSpec spec;
    std::string where;
};
// The rollouts of a configuration; two of one service are refused.
Result<std::vector<DeclaredRollout>> traffic_rollouts(const std::vector<Resource>& resources);
// Refuses a rollout whose service or canary the plan does not have, citing where it was declared.
Result<void> check_rollouts(const std::vector<DeclaredRollout>& rollouts, const Plan& plan);

}  // namespace tcpshift
