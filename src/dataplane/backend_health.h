// How the kernel reaches each backend, and the health of the connect-time ones: what
// `status` shows and the agent's probe writes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

#include "base/error.h"
#include "compile/plan.h"
#include "dataplane/counters.h"
#include "dataplane/maps.h"

namespace tcpshift {

struct BackendHealth {
    bool remote = false;        // "backend_addrs" says connect-time steering reaches it
    bool probe_down = false;    // the agent's last probe of it failed
    uint64_t ejected_ms = 0;    // how much longer it takes no new connection; 0: not ejected
    uint32_t failures = 0;      // failed handshakes since the last good one
    uint64_t failed = 0;        // failed handshakes, ever
    uint64_t ejections = 0;     // times ejected, ever
    uint64_t overflows = 0;     // SYNs handed to a listener of it with a full accept queue, ever
    uint32_t max_connections = 0;  // the cap "backend_addrs" holds; 0: none
    BackendLoad load;              // "backend_load": established, and handshakes holding a place
    // How long ago it became ready (its first listener started, or its probe found it back);
    // std::nullopt when ready since tcpshift first saw it. A service's warmup ramps it from then.
    std::optional<uint64_t> ready_age_ms;

    bool available() const { return !probe_down && ejected_ms == 0; }
};

// CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns().
uint64_t monotonic_ns();

// The kernel's view of every backend of `plan`, by id.
Result<std::map<uint32_t, BackendHealth>> backend_health(const DataplaneMaps& maps, const Plan& plan);

// Records the agent's probe of a connect-time backend. A backend that answers is back at once:
// its ejection ends and its failures are forgotten.
Result<void> record_probe(const DataplaneMaps& maps, uint32_t backend_id, bool answered);

}  // namespace tcpshift
