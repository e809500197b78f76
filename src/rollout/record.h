// A rollout's record: its spec, the weights it started from, the step it reached, what it
// measured over time and how it ended. The runner rewrites it at each tick, so that `rollout
// status` reads it from another process and a new runner takes the rollout over where its
// last runner left it: at the step it reached, never further.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "rollout/gates.h"
#include "rollout/spec.h"

namespace tcpshift {

enum class RolloutPhase {
    kRunning,
    kPaused,
    kPromoted,  // every step passed
    kAborted,   // a gate failed or a user aborted: the starting weights are back
    kStopped,   // the weights were changed outside the rollout: left as they are
};
const char* phase_name(RolloutPhase phase);
bool finished(RolloutPhase phase);

// One reading of the timeline, `t_ms` after the rollout began.
struct RolloutPoint {
    uint64_t t_ms = 0;
    std::map<std::string, uint32_t> weights;
    std::map<std::string, SubsetFigures> totals;  // since the rollout began
};
// Something that happened: a step taken, passed, a pause, the end.
struct RolloutNote {
    uint64_t t_ms = 0;
    std::string kind;  // "step", "pass", "pause", "resume", "abort", "promote", "stop", "takeover", "hold"
    std::string text;
};

struct RolloutRecord {
    RolloutSpec spec;
    std::map<std::string, uint32_t> start_weights;
    // Counter readings when the rollout began: the timeline's totals are relative to them.
    std::map<std::string, SubsetFigures> origin;
    size_t step = 0;           // index into spec.steps of the step applied last
    bool step_applied = false;  // false until the first step's weights are installed
    // A gate failed or an abort was asked, and the starting weights are being put back: a
    // runner that takes the record over only finishes that.
    bool aborting = false;
    bool agent = false;  // declared (TrafficRollout) and run by the namespace's agent
    RolloutPhase phase = RolloutPhase::kRunning;
    int pid = 0;               // the runner's process
    uint64_t started_unix_ms = 0;
    uint64_t step_started_ms = 0;   // since the rollout began
    std::string live;          // the last judgement, or what the step waits for
    std::string failed_gate;   // set when a gate aborted the rollout
    std::string outcome;       // one line, once it ended
    std::vector<RolloutPoint> timeline;
    std::vector<RolloutNote> notes;
};

nlohmann::json record_json(const RolloutRecord& record);
Result<RolloutRecord> record_from_json(const nlohmann::json& doc);

// /run/tcpshift/<netns inode>/rollouts/<service>.json, and the control file beside it.
std::string record_path(uint64_t netns_inode, const std::string& service);
std::string control_path(uint64_t netns_inode, const std::string& service);
// Written to a temporary file and renamed over the old one; the directory is made as needed.
Result<void> save_record(const std::string& path, const RolloutRecord& record);
// nullopt when there is none.
Result<std::optional<RolloutRecord>> load_record(const std::string& path);
// A request to the runner ("pause", "resume", "abort"), taken at its next tick.
Result<void> send_control(const std::string& path, const std::string& request);
// The pending request, removed as it is read; nullopt when none.
std::optional<std::string> take_control(const std::string& path);
// Drops a request left for a runner that has gone (a new runner starts clean).
void clear_control(const std::string& path);

// A rollout's runner holds an flock on <service>.lock beside the record for as long as it runs:
// one runner a rollout, and its liveness known without trusting a pid.
std::string lock_path(uint64_t netns_inode, const std::string& service);
// Takes the lock without waiting; the error's errno is EWOULDBLOCK when a runner holds it.
Result<Fd> take_runner_lock(const std::string& path);
// Whether a live runner holds the lock.
bool runner_holds(const std::string& path);

}  // namespace tcpshift
