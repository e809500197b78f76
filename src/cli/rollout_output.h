// How `tcpshift rollout` shows a rollout: a line per step, pass and end on stderr, a live
// status line (rewritten in place on a terminal, every 10 s otherwise), and the final report
// on stdout; or, with --json, one JSON event per line on stdout.
#pragma once

#include <cstdint>
#include <ostream>

#include "rollout/record.h"

namespace tcpshift {

class RolloutPrinter {
   public:
    RolloutPrinter(std::ostream& out, std::ostream& err, bool json, bool live_in_place)
        : out_(out), err_(err), json_(json), in_place_(live_in_place) {}
    // After each tick (note null) or note of the runner.
    void changed(const RolloutRecord& record, const RolloutNote* note);
    // The end: what happened, which gate with which figures, the step reached.
    void report(const RolloutRecord& record);

   private:
    void live(const RolloutRecord& record);
    std::ostream& out_;
    std::ostream& err_;
    bool json_;
    bool in_place_;
    bool line_open_ = false;      // a live line is on the terminal, not ended
    uint64_t last_live_ms_ = 0;   // when the live line was last printed, off a terminal
};

// "step 2/5 (v2 10%), 12 of 30 s, 1 min 48 s left: <what the step measured>"
std::string live_text(const RolloutRecord& record);
// The rollout at a glance, for `rollout status`.
void print_rollout_status(const RolloutRecord& record, bool runner_alive, std::ostream& out);

}  // namespace tcpshift
