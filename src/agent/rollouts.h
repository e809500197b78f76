// The rollouts the agent's configuration declares (kind: TrafficRollout), each run by a thread
// of its own with the same loop as `tcpshift rollout`. The weights a rollout installs outlive
// the agent's reloads: they overlay the files' weights of its service. At a start they are read
// back from the rollout's record, so an agent killed mid-rollout comes back holding the step it
// reached, and takes the rollout over there.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/log.h"
#include "apply/transaction.h"
#include "base/netns.h"
#include "rollout/record.h"

namespace tcpshift {

using Weights = std::map<std::string, uint32_t>;

// The next set with each rollout's weights (service -> weights) written over its service's. A
// service the set no longer has, or a subset it lost, keeps the configuration's weights, with a
// warning.
Result<NextSet> with_rollout_weights(NextSet next, const std::map<std::string, Weights>& overlay,
                                     const PlanLimits& limits, const NetnsId& netns, Log& log);

class AgentRollouts {
   public:
    // `apply_mutex` is held by the agent's reloads and by each step's install, so that a reload
    // reads the overlay and installs it without a step between.
    AgentRollouts(const NetnsId& netns, Log& log, std::mutex& apply_mutex)
        : netns_(netns), log_(log), apply_mutex_(apply_mutex) {}
    ~AgentRollouts() { stop(); }
    AgentRollouts(const AgentRollouts&) = delete;
    AgentRollouts& operator=(const AgentRollouts&) = delete;

    // At each reload, before it compiles: service -> the weights its declared rollout installed,
    // to write over the configuration's. A rollout not running now is read back from its
    // record: one of the same spec (held, or ended), or one that ended (its weights stay until a
    // new rollout of the service moves them). A service no rollout declares has none.
    std::map<std::string, Weights> overlay(const std::vector<RolloutSpec>& specs);
    // After a reload: starts each declared rollout that has no record or a finished one of
    // another spec (unless its canary takes the first step's share already), takes over each
    // whose record has not ended, and holds the running ones the configuration no longer
    // declares.
    void reconcile(const std::vector<RolloutSpec>& specs);
    // Holds every running rollout where it is, and waits for their threads.
    void stop();

   private:
    struct Running {
        RolloutSpec spec;
        std::thread thread;
        bool hold = false;  // under mutex_
        bool done = false;  // under mutex_
    };
    void start(RolloutRecord record);
    void start_fresh(const RolloutSpec& spec);
    // Logs `message` once for `spec` (a refused start, an edit that waits): not at every reload.
    void log_once(const RolloutSpec& spec, const char* level, const std::string& message);
    void run(RolloutRecord record, Running* running);

    NetnsId netns_;
    Log& log_;
    std::mutex& apply_mutex_;
    std::mutex mutex_;  // overlay_ and running_
    std::map<std::string, Weights> overlay_;
    std::map<std::string, std::unique_ptr<Running>> running_;
    std::map<std::string, std::string> logged_;  // service -> the message last logged once
};

}  // namespace tcpshift
