#include "dataplane/map_access.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "bpf/abi.h"

namespace tcpshift {

// The layout of every key and value this layer reads or writes, as bpf/abi.h declares it.
static_assert(sizeof(ts_frontend_key) == 24);
static_assert(sizeof(ts_frontend) == 4);
static_assert(sizeof(ts_service) == 16);
static_assert(sizeof(ts_flow_key) == 40);
static_assert(sizeof(ts_table) ==
              (48 + 2 * TS_WARMUP_STEPS + 3 * 2 * TS_MAX_SERVICE_BACKENDS + (TS_TABLE_SLOTS + 3) + 7) / 8 * 8);
// A slot holds a backend's position in its table as one byte.
static_assert(TS_MAX_SERVICE_BACKENDS <= 256);
static_assert(sizeof(ts_backend_addr) == 48);
static_assert(sizeof(ts_backend_load) == 8 + 8 * TS_MAX_PENDING);
static_assert(sizeof(ts_backend_health) == 56);
static_assert(sizeof(ts_client) == 48);
static_assert(sizeof(ts_backend_sli) == 8 * (8 + 2 * TS_SLI_BUCKETS));
static_assert(sizeof(ts_listener_key) == 32);
static_assert(sizeof(ts_service_stats) == 64);
static_assert(sizeof(ts_backend_stats) == 40);
static_assert(sizeof(ts_connection) == 32);
static_assert(sizeof(ts_listener) == 8);
static_assert(sizeof(ts_backend_tag) == 4);
static_assert(sizeof(ts_meta) == 24);

int libbpf_errno(int ret) { return ret < 0 ? -ret : errno; }

Result<void> read_map(const Fd& map, const char* name, const void* key, void* value) {
    if (bpf_map_lookup_elem(map.get(), key, value) != 0)
        return fail(system_error(std::string("read map \"") + name + "\"", errno));
    return {};
}

Result<void> update_map(const Fd& map, const char* name, const void* key, const void* value) {
    // A map that allocates its elements on insert (BPF_F_NO_PREALLOC; per-CPU ones above all)
    // takes them from caches the kernel refills in the background: thousands of inserts in a
    // row can find them empty for a moment, ENOMEM. Waiting a little lets them refill; about a
    // second in all before it counts as a real shortage.
    constexpr int kRetries = 12;
    for (int attempt = 0;; ++attempt) {
        if (bpf_map_update_elem(map.get(), key, value, BPF_ANY) == 0) return {};
        if (errno != ENOMEM || attempt == kRetries)
            return fail(system_error(std::string("update map \"") + name + "\"", errno));
        std::this_thread::sleep_for(std::chrono::microseconds(500) * (1 << std::min(attempt, 8)));
    }
}

Result<void> delete_from_map(const Fd& map, const char* name, const void* key) {
    if (bpf_map_delete_elem(map.get(), key) != 0 && errno != ENOENT)
        return fail(system_error(std::string("delete from map \"") + name + "\"", errno));
    return {};
}

Result<void> clear_percpu(const Fd& map, const char* name, const void* key, size_t value_size) {
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) return fail(system_error("count possible CPUs", -cpus));
    // The kernel rounds each CPU's value up to 8 bytes.
    std::vector<uint8_t> zeros(static_cast<size_t>(cpus) * ((value_size + 7) & ~size_t{7}), 0);
    return update_map(map, name, key, zeros.data());
}

}  // namespace tcpshift
