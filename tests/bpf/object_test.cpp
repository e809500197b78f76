// The loaded BPF object against the map lists of bpf/abi.h: a map the object defines but the
// lists leave out would never be pinned, opened or granted, so it fails here instead.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "netns_fixture.h"
#include "steer_bpf.skel.h"
#include "bpf/abi.h"
#include "dataplane/dataplane.h"

namespace tcpshift {
namespace {

TEST(SteerObject, HasExactlyTheMapsAbiHLists) {
    TCPSHIFT_REQUIRE_ROOT();
    auto netns = current_netns();
    ASSERT_TRUE(netns);
    auto program = SteerProgram::load(0x5eed, netns->cookie);
    ASSERT_TRUE(program) << program.error().message;

    std::set<std::string> listed;
    size_t entries = 0;
#define TS_LIST_MAP(name) listed.insert(#name), ++entries;
    TS_PINNED_MAPS(TS_LIST_MAP)
    TS_PROGRAM_MAPS(TS_LIST_MAP)
#undef TS_LIST_MAP
    EXPECT_EQ(listed.size(), entries) << "a map in both lists";

    std::set<std::string> loaded;
    const bpf_map* map = nullptr;
    bpf_object__for_each_map(map, program->skeleton()->obj) {
        if (!bpf_map__is_internal(map)) loaded.insert(bpf_map__name(map));  // .rodata: the loader's constants
    }
    EXPECT_EQ(loaded, listed);
}

}  // namespace
}  // namespace tcpshift
