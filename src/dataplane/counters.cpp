#include "dataplane/counters.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <vector>

#include "bpf/abi.h"
#include "dataplane/map_access.h"

namespace tcpshift {

namespace {

template <typename T, typename Key>
Result<T> sum_percpu(const Fd& map, const char* name, const Key& index) {
    static_assert(sizeof(T) % 8 == 0);
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) return fail(system_error("count possible CPUs", -cpus));
    std::vector<T> values(static_cast<size_t>(cpus));
    if (auto ok = read_map(map, name, &index, values.data()); !ok) return fail(ok.error());
    T total{};
    auto* out = reinterpret_cast<uint64_t*>(&total);
    for (const auto& v : values) {
        const auto* in = reinterpret_cast<const uint64_t*>(&v);
        for (size_t i = 0; i < sizeof(T) / 8; ++i) out[i] += in[i];
    }
    return total;
}

BackendCounters backend_counters(const ts_backend_stats& b) {
    return BackendCounters{.steered = b.steered,
                           .opened = b.opened,
                           .closed = b.closed,
                           .bytes_sent = b.bytes_sent,
                           .bytes_received = b.bytes_received};
}

}  // namespace

Result<ServiceCounters> read_service_counters(const DataplaneMaps& maps, uint32_t service_id) {
    auto s = sum_percpu<ts_service_stats>(maps.service_stats, "service_stats", service_id);
    if (!s) return fail(s.error());
    return ServiceCounters{.lookups = s->lookups,
                           .fallbacks = s->fallbacks,
                           .no_backend = s->no_backend,
                           .connects = s->connects,
                           .connect_errors = s->connect_errors,
                           .connect_ejected = s->connect_ejected,
                           .spills = s->spills,
                           .overflows = s->overflows};
}

Result<BackendLoad> read_backend_load(const DataplaneMaps& maps, uint32_t backend_id, uint64_t now_ns) {
    ts_backend_load load{};
    if (auto ok = read_map(maps.backend_load, "backend_load", &backend_id, &load); !ok) return fail(ok.error());
    BackendLoad out{.active = load.active};
    for (uint64_t until : load.pending_until_ns) out.pending += until > now_ns;
    return out;
}

uint64_t rtt_bound_us(size_t bucket) { return TS_RTT_BOUND_US(bucket); }
uint64_t duration_bound_us(size_t bucket) { return TS_DURATION_BOUND_US(bucket); }

Result<BackendSli> read_backend_sli(const DataplaneMaps& maps, uint32_t backend_id) {
    ts_backend_sli s{};
    if (auto ok = read_map(maps.backend_sli, "backend_sli", &backend_id, &s); !ok) return fail(ok.error());
    BackendSli out{.reset_after_data = s.reset_after_data,
                   .reset_without_data = s.reset_without_data,
                   .retransmits = s.retransmits,
                   .unanswered = s.unanswered};
    out.rtt_us.count = s.rtt_count;
    out.rtt_us.sum = s.rtt_sum_us;
    out.duration_us.count = s.duration_count;
    out.duration_us.sum = s.duration_sum_us;
    static_assert(TS_SLI_BUCKETS == std::tuple_size_v<decltype(Histogram::buckets)>);
    std::copy(std::begin(s.rtt_buckets), std::end(s.rtt_buckets), out.rtt_us.buckets.begin());
    std::copy(std::begin(s.duration_buckets), std::end(s.duration_buckets), out.duration_us.buckets.begin());
    return out;
}

Result<BackendCounters> read_route_counters(const DataplaneMaps& maps, uint32_t service_id, uint32_t backend_id) {
    const ts_route_key key{.service_id = service_id, .backend_id = backend_id};
    auto b = sum_percpu<ts_backend_stats>(maps.route_stats, "route_stats", key);
    if (!b) return fail(b.error());
    return backend_counters(*b);
}

Result<BackendCounters> read_backend_counters(const DataplaneMaps& maps, uint32_t backend_id) {
    auto b = sum_percpu<ts_backend_stats>(maps.backend_stats, "backend_stats", backend_id);
    if (!b) return fail(b.error());
    return backend_counters(*b);
}

}  // namespace tcpshift
