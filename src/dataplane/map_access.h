// Reading and writing one map entry, for the files of this layer: each call names the map in
// its error, as `update map "tables": E2BIG`.
#pragma once

#include <cstddef>

#include "base/error.h"
#include "base/fd.h"

namespace tcpshift {

// libbpf returns -errno or sets errno, depending on the call.
int libbpf_errno(int ret);

Result<void> read_map(const Fd& map, const char* name, const void* key, void* value);
Result<void> update_map(const Fd& map, const char* name, const void* key, const void* value);
// A missing entry is fine.
Result<void> delete_from_map(const Fd& map, const char* name, const void* key);
// Zeroes one entry of a per-CPU map on every CPU (creating it in a hash); `value_size` is
// the size of one CPU's value.
Result<void> clear_percpu(const Fd& map, const char* name, const void* key, size_t value_size);

}  // namespace tcpshift
