// The per-CPU counters sk_lookup and sock_ops keep, summed over the CPUs.
#pragma once

#include <array>
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
// A histogram of the kernel's backend_sli: the count in each bucket (not cumulative), the
// values' sum and count. bound(i) is bucket i's upper bound; the last bucket has none.
struct Histogram {
    std::array<uint64_t, 16> buckets{};
    uint64_t count = 0;
    uint64_t sum = 0;

    // The smallest bucket bound at or under which a fraction q of the values fall; UINT64_MAX
    // for the last bucket, 0 with no values. `bound` gives bucket i's bound.
    template <typename Bound>
    uint64_t quantile_bound(double q, Bound bound) const {
        if (count == 0) return 0;
        uint64_t seen = 0;
        for (size_t i = 0; i + 1 < buckets.size(); ++i) {
            seen += buckets[i];
            if (static_cast<double>(seen) >= q * static_cast<double>(count)) return bound(i);
        }
        return UINT64_MAX;
    }
};
// What the backend's closed connections measured (backend_sli), both paths: the canary's SLIs.
struct BackendSli {
    uint64_t reset_after_data = 0;    // ended by a reset after the backend wrote
    uint64_t reset_without_data = 0;  // by a reset, the backend having written nothing, after 1 s
    uint64_t retransmits = 0;       // segments retransmitted
    uint64_t unanswered = 0;        // closed, established, the backend having written nothing
    Histogram rtt_us;               // smoothed RTT at close, microseconds
    Histogram duration_us;          // establishment to close, microseconds
};
// The bucket bounds of backend_sli's histograms (TS_RTT_BOUND_US, TS_DURATION_BOUND_MS).
uint64_t rtt_bound_us(size_t bucket);
uint64_t duration_bound_us(size_t bucket);

// Sums the per-CPU counters.
Result<ServiceCounters> read_service_counters(const DataplaneMaps& maps, uint32_t service_id);
Result<BackendCounters> read_backend_counters(const DataplaneMaps& maps, uint32_t backend_id);
// Reads backend_load; `now_ns` is CLOCK_MONOTONIC, against which reservations lapse.
Result<BackendLoad> read_backend_load(const DataplaneMaps& maps, uint32_t backend_id, uint64_t now_ns);
Result<BackendSli> read_backend_sli(const DataplaneMaps& maps, uint32_t backend_id);
// The connections that reached a backend through one service's frontends.
Result<BackendCounters> read_route_counters(const DataplaneMaps& maps, uint32_t service_id, uint32_t backend_id);

}  // namespace tcpshift
