#include "dataplane/backend_health.h"

#include <ctime>

#include "bpf/abi.h"
#include "dataplane/map_access.h"

namespace tcpshift {

uint64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Result<std::map<uint32_t, BackendHealth>> backend_health(const DataplaneMaps& maps, const Plan& plan) {
    std::map<uint32_t, BackendHealth> out;
    const uint64_t now = monotonic_ns();
    for (const auto& [name, id] : plan.ids.backends) {
        ts_backend_addr addr{};
        ts_backend_health h{};
        if (auto ok = read_map(maps.backend_addrs, "backend_addrs", &id, &addr); !ok) return fail(ok.error());
        if (auto ok = read_map(maps.backend_health, "backend_health", &id, &h); !ok) return fail(ok.error());
        auto load = read_backend_load(maps, id, now);
        if (!load) return fail(load.error());
        out[id] = BackendHealth{.remote = (addr.flags & TS_BACKEND_REMOTE) != 0,
                                .probe_down = h.probe_down != 0,
                                .ejected_ms = h.ejected_until_ns > now ? (h.ejected_until_ns - now) / 1000000 : 0,
                                .failures = h.failures,
                                .failed = h.failed,
                                .ejections = h.ejected,
                                .overflows = h.overflows,
                                .max_connections = addr.max_connections,
                                .load = *load,
                                .ready_age_ms = h.ready_ns && h.ready_ns <= now
                                                    ? std::optional<uint64_t>((now - h.ready_ns) / 1000000)
                                                    : std::nullopt};
    }
    return out;
}

Result<void> record_probe(const DataplaneMaps& maps, uint32_t backend_id, bool answered) {
    ts_backend_health h{};
    if (auto ok = read_map(maps.backend_health, "backend_health", &backend_id, &h); !ok) return ok;
    // Back after it was down: ready from now, so that a service with warmup ramps it up.
    if (answered && h.probe_down) h.ready_ns = monotonic_ns();
    h.probe_down = answered ? 0 : 1;
    if (answered) {
        h.ejected_until_ns = 0;
        h.failures = 0;
        h.ejections = 0;
    }
    // The counters sock_ops adds to between the read and this write lose those additions: a
    // probe every few seconds costs at most the failures of that instant.
    return update_map(maps.backend_health, "backend_health", &backend_id, &h);
}

}  // namespace tcpshift
