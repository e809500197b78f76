// Closing connections on purpose: those past their service's maxConnectionDuration or
// idleTimeout (the agent's sweep), and the excess of backends above their share after a
// weight shift (rebalance). Choosing is pure and tested without root; closing goes through
// dataplane/live_connections.h, an abort (RST) to the client.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compile/plan.h"
#include "dataplane/handle.h"
#include "dataplane/live_connections.h"

namespace tcpshift {

// A connection's limit stretched by its own jitter, up to kLifetimeJitterPercent more: the
// same for the connection at every sweep (drawn from its cookie), spread over connections.
uint64_t jittered_ms(uint64_t limit_ms, uint64_t cookie);

struct ExpiredConnection {
    LiveConnection connection;
    std::string service;
    std::string why;  // "open 2.1 s, maxConnectionDuration 2 s (+4%)", "idle 5.0 s, idleTimeout 5 s (+1%)"
};

// The connections of `plan`'s services that are past their lifetime policy at `now_ns`
// (CLOCK_MONOTONIC, the clock of established_ns).
std::vector<ExpiredConnection> expired_connections(const Plan& plan, const std::vector<LiveConnection>& live,
                                                   uint64_t now_ns);

// One backend of a service in a rebalance: its live connections and the share its weight gives.
struct BackendBalance {
    uint32_t id = 0;
    std::string subset;
    Endpoint address;
    double share = 0;   // of its family's connections, by weight
    size_t live = 0;    // active connections now
    size_t target = 0;  // share x the family's connections, rounded to nearest
    size_t excess() const { return live > target ? live - target : 0; }
};

struct RebalanceChoice {
    std::vector<BackendBalance> backends;
    std::vector<LiveConnection> to_close;  // only ever from backends above their target
};

// Which connections of `service` to close so that the live shares approach the weights: on
// each backend above its target, its excess, the longest idle first (then the oldest), at most
// `budget` in all, taken in turn from the backends so a small budget spreads over them. A
// backend at or under its target loses none. `floor_total` (per family index) keeps targets
// from sinking while closed clients are between their reset and their reconnect: a family's
// total is the larger of its live count and its floor.
RebalanceChoice choose_rebalance(const PlanService& service, const std::vector<LiveConnection>& live, size_t budget,
                                 const std::array<size_t, 2>& floor_total = {0, 0});

struct RebalanceOptions {
    uint32_t rate = 50;  // connections a second
    uint32_t max = 0;    // in all; 0: no cap
    std::chrono::milliseconds timeout{60000};
};

struct RebalanceReport {
    std::vector<BackendBalance> before, after;
    size_t closed = 0;
    size_t rounds = 0;
    double seconds = 0;
    bool converged = false;  // no backend above its target at the end
    std::string path;        // destroy_path_name()
};

// Closes the excess of `service` in rounds of about 100 ms (jittered 50-150 ms), each round
// listing the connections again and closing what the rate allows since the last, until no
// backend has been above its target for three rounds in a row (the reset clients have
// reconnected, by the weights), `max` are closed or the timeout passes. `progress` gets one
// line per round that closed some.
Result<RebalanceReport> run_rebalance(Dataplane& dataplane, const PlanService& service, const RebalanceOptions& options,
                                      const std::function<void(const std::string&)>& progress);

}  // namespace tcpshift
