#include "tcpshift/flow_hash.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <vector>

#include "stats.h"
#include "tcpshift/bpf_abi.h"
#include "tcpshift/weight_table.h"

namespace tcpshift {
namespace {

using testing::chi_square_split;
using testing::kAlpha;

// One client, sequential source ports, as a kernel hands them out: the slots they hash to are
// uniform over 16 buckets.
TEST(FlowHash, SequentialSourcePortsSpreadEvenly) {
    const __u32 client[4] = {htonl(0x7f000001), 0, 0, 0};
    const __u32 frontend[4] = {htonl(0x7f000001), 0, 0, 0};
    for (const __u64 seed : {0x0ULL, 0x1234567890abcdefULL, 0xffffffffffffffffULL}) {
        std::vector<uint64_t> buckets(16, 0);
        for (uint32_t port = 32768; port < 32768 + 16000; ++port)
            ++buckets[ts_flow_hash(client, static_cast<__u16>(port), frontend, 31400, seed) % TS_TABLE_SLOTS % 16];
        const auto v = chi_square_split(buckets, std::vector<double>(16, 1.0));
        EXPECT_GE(v.p_value, kAlpha) << "seed " << seed << "\n" << v.table;
    }
}

// Through a real 20/80 table, sequential ports split 20/80.
TEST(FlowHash, SequentialSourcePortsFollowTheTable) {
    const auto table = build_weight_table({{.id = 0, .name = "a", .weight = 20}, {.id = 1, .name = "b", .weight = 80}},
                                          TS_TABLE_SLOTS, TS_NO_BACKEND);
    const __u32 client[4] = {htonl(0x0a000001), 0, 0, 0};
    const __u32 frontend[4] = {0, 0, 0, 0};
    std::vector<uint64_t> counts(2, 0);
    for (uint32_t port = 40000; port < 50000; ++port)
        ++counts[table[ts_flow_hash(client, static_cast<__u16>(port), frontend, 31400, 42) % TS_TABLE_SLOTS]];
    const auto v = chi_square_split(counts, {20, 80});
    EXPECT_GE(v.p_value, kAlpha) << v.table;
}

TEST(FlowHash, TheSeedChangesTheSlot) {
    const __u32 client[4] = {htonl(0x7f000001), 0, 0, 0};
    int same = 0;
    for (uint32_t port = 1000; port < 2000; ++port)
        same += ts_flow_hash(client, static_cast<__u16>(port), client, 80, 1) % TS_TABLE_SLOTS ==
                ts_flow_hash(client, static_cast<__u16>(port), client, 80, 2) % TS_TABLE_SLOTS;
    EXPECT_LT(same, 10);
}

TEST(FlowHash, SourceHashIgnoresPorts) {
    const __u32 a[4] = {htonl(0x0a000001), 0, 0, 0};
    const __u32 b[4] = {htonl(0x0a000002), 0, 0, 0};
    EXPECT_EQ(ts_source_hash(a, 9), ts_source_hash(a, 9));
    EXPECT_NE(ts_source_hash(a, 9), ts_source_hash(b, 9));
}

}  // namespace
}  // namespace tcpshift
