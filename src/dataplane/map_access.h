// Reading and writing one map entry, for the files of this layer: each call names the map in
// its error, as `update map "tables": E2BIG`.
#pragma once

#include <bpf/bpf.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace tcpshift {

// libbpf returns -errno or sets errno, depending on the call.
int libbpf_errno(int ret);

Result<void> read_map(const Fd& map, const char* name, const void* key, void* value);
Result<void> update_map(const Fd& map, const char* name, const void* key, const void* value);
// A missing entry is fine.
Result<void> delete_from_map(const Fd& map, const char* name, const void* key);
// Every key of a hash map, gathered before the caller acts on them: a hash walked while its
// entries are deleted may restart and repeat.
template <typename Key>
Result<std::vector<Key>> map_keys(const Fd& map, const char* name) {
    std::vector<Key> keys;
    Key key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(map.get(), prev, &next) == 0) {
        keys.push_back(next);
        key = next;
        prev = &key;
    }
    if (errno != ENOENT) return fail(system_error(std::string("iterate map \"") + name + "\"", errno));
    return keys;
}

// Zeroes one entry of a per-CPU map on every CPU (creating it in a hash); `value_size` is
// the size of one CPU's value.
Result<void> clear_percpu(const Fd& map, const char* name, const void* key, size_t value_size);

}  // namespace tcpshift
