// The per-CPU counters sk_lookup and sock_ops keep, summed over the CPUs.
#pragma once

#include <cstdint>

#include "base/error.h"
#include "dataplane/maps.h"

namespace tcpshift {

struct ServiceCounters {
    uint64_t lookups = 0, fallbacks = 0, no_backend = 0;
    uint64_t connects = 0;        // connect() calls rewritten to a remote backend
    uint64_t connect_errors = 0;  // connect() calls left alone on an internal error
    uint64_t connect_ejected = 0; // draws that found their backend ejected
    uint64_t spills = 0;          // draws that found their backend at its cap and drew again
    uint64_t overflows = 0;       // connections refused: every backend at its cap
};
// What a backend holds now: established connections, and handshakes holding a reservation
// under its cap (backend_load).
struct BackendLoad {
    uint32_t active = 0;
    uint32_t pending = 0;
};
struct BackendCounters {
    uint64_t steered = 0;         // new connections sk_lookup handed to its listener
    uint64_t opened = 0;          // connections it accepted, steered or direct
    uint64_t closed = 0;          // of those, closed
    uint64_t bytes_sent = 0;      // counted when a connection closes
    uint64_t bytes_received = 0;  // counted when a connection closes

    uint64_t active() const { return opened >= closed ? opened - closed : 0; }
};
// Sums the per-CPU counters.
Result<ServiceCounters> read_service_counters(const DataplaneMaps& maps, uint32_t service_id);
Result<BackendCounters> read_backend_counters(const DataplaneMaps& maps, uint32_t backend_id);
// Reads backend_load; `now_ns` is CLOCK_MONOTONIC, against which reservations lapse.
Result<BackendLoad> read_backend_load(const DataplaneMaps& maps, uint32_t backend_id, uint64_t now_ns);
// The connections that reached a backend through one service's frontends.
Result<BackendCounters> read_route_counters(const DataplaneMaps& maps, uint32_t service_id, uint32_t backend_id);

}  // namespace tcpshift
