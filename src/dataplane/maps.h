// The maps of bpf/steer.bpf.c as userspace holds them: one fd each, and their pin names.
#pragma once

#include <array>

#include "base/fd.h"
#include "bpf/abi.h"

namespace tcpshift {

// The pinned maps of an attached namespace, one member for each of TS_PINNED_MAPS (bpf/abi.h),
// by the names they have in the BPF object and under the pin directory.
struct DataplaneMaps {
#define TS_MAP_MEMBER(name) Fd name;
    TS_PINNED_MAPS(TS_MAP_MEMBER)
#undef TS_MAP_MEMBER
};

// Every pinned map with its name, built from TS_PINNED_MAPS: the one list that pinning,
// opening and granting walk.
struct MapName {
    const char* name;
    Fd DataplaneMaps::*fd;
};
inline constexpr auto kDataplaneMaps = std::to_array<MapName>({
#define TS_MAP_NAME(name) {#name, &DataplaneMaps::name},
    TS_PINNED_MAPS(TS_MAP_NAME)
#undef TS_MAP_NAME
});

}  // namespace tcpshift
