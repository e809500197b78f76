// Runs a rollout: installs each step's weights, reads the kernel's figures at each tick,
// judges the step once its interval is over, and either goes on, promotes, or puts the
// starting weights back at once. The system is reached only through RolloutIo, so the same
// loop runs under the CLI, the agent and unit tests.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "base/error.h"
#include "rollout/record.h"

namespace tcpshift {

// What the kernel holds for the service now.
struct Reading {
    std::map<std::string, SubsetFigures> figures;  // counters since the backends' ids began
    std::map<std::string, uint32_t> weights;       // as applied
};

struct RolloutIo {
    std::function<Result<Reading>()> read;
    std::function<Result<void>(const std::map<std::string, uint32_t>&)> set_weights;
    std::function<uint64_t()> now_unix_ms;  // for the record's times
    std::function<uint64_t()> steady_ms;    // for a step's interval: a wall clock may jump
    std::function<void(uint64_t ms)> sleep_ms;
    // A pending request from `rollout pause|resume|abort`, taken as it is read; "hold" stops
    // the runner where it is, the step's weights left installed (its process is stopping).
    std::function<std::optional<std::string>()> control;
    // Called after each tick with no note, and with each note as it is made; the record is
    // whole each time, to persist and print.
    std::function<void(const RolloutRecord&, const RolloutNote*)> changed;
    uint64_t tick_ms = 1000;
    // How long, at most, a failed install of the starting weights is tried again before the
    // runner gives up and holds (the record says it is aborting).
    uint64_t restore_for_ms = 60'000;
};

// The baseline is judged over the step when it had at least this many RTTs in it, and over
// the whole rollout otherwise (at 100% the baseline takes no connection).
inline constexpr uint64_t kBaselineRttsPerStep = 30;

// Runs `record` from the step it holds to its end. A record whose step was applied before (a
// runner that died) is taken over at that step, which is judged again from the start; no step
// is ever skipped. Returns an error, holding the step, when the kernel cannot be read or
// written; the record's phase says how it ended otherwise, or is still running when held.
Result<void> run_rollout(RolloutRecord& record, const RolloutIo& io);

// "v1=80 v2=20"
std::string weights_text(const std::map<std::string, uint32_t>& weights);

// The system's clocks, for a RolloutIo that runs for real.
uint64_t system_unix_ms();
uint64_t system_steady_ms();
// Sleeps `ms` in slices of 50 ms, and returns early once `stop()` holds.
void sleep_unless(uint64_t ms, const std::function<bool()>& stop);

}  // namespace tcpshift
