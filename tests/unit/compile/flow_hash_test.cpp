#include "bpf/flow_hash.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <vector>

#include "stats.h"
#include "bpf/abi.h"
#include "compile/weight_table.h"
#include "test_names.h"

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

// The words of one flow as sk_lookup reads them: addresses in network byte order (IPv4 in
// word 0, the rest zero), ports in host byte order.
struct Flow {
    __u32 saddr[4] = {};
    __u32 daddr[4] = {};
    __u16 sport = 0;
    __u16 dport = 0;
};

Flow ipv4_flow() {
    Flow f;
    f.saddr[0] = htonl(0x7f010001);  // 127.1.0.1
    f.daddr[0] = htonl(0x7f000001);  // 127.0.0.1
    f.sport = 40000;
    f.dport = 31400;
    return f;
}

Flow ipv6_flow() {
    Flow f;
    const __u32 client[4] = {htonl(0x20010db8), htonl(0x00010002), htonl(0x0a0b0c0d), htonl(0x00000005)};
    const __u32 frontend[4] = {htonl(0xfd000000), htonl(0x00000031), htonl(0x00000000), htonl(0x00000001)};
    for (int i = 0; i < 4; ++i) {
        f.saddr[i] = client[i];
        f.daddr[i] = frontend[i];
    }
    f.sport = 40000;
    f.dport = 31400;
    return f;
}

// One word of a flow that a client or a frontend can vary: each row walks it through 16,000
// values, as many clients or frontends would, and keeps every other word fixed.
struct WordCase {
    const char* desc;
    Flow base;
    void (*set)(Flow& f, uint32_t i);  // the i-th value of the word
    bool in_source;                    // part of the source address, which ts_source_hash reads
};

void PrintTo(const WordCase& c, std::ostream* os) { *os << c.desc; }

class FlowHashWord : public ::testing::TestWithParam<WordCase> {};

constexpr uint32_t kValues = 16000;
constexpr __u64 kSeeds[] = {0x0ULL, 0x1234567890abcdefULL, 0xffffffffffffffffULL};

__u32 flow_hash_of(const Flow& f, __u64 seed) { return ts_flow_hash(f.saddr, f.sport, f.daddr, f.dport, seed); }

// Every word feeds the 4-tuple hash: walking one word alone spreads the slots evenly over 16
// buckets. A hash that skipped the word would put all 16,000 flows in one bucket.
TEST_P(FlowHashWord, EveryWordOfTheFlowSpreadsTheSlots) {
    const auto& c = GetParam();
    for (const __u64 seed : kSeeds) {
        std::vector<uint64_t> buckets(16, 0);
        for (uint32_t i = 0; i < kValues; ++i) {
            Flow f = c.base;
            c.set(f, i);
            ++buckets[flow_hash_of(f, seed) % TS_TABLE_SLOTS % 16];
        }
        const auto v = chi_square_split(buckets, std::vector<double>(16, 1.0));
        EXPECT_GE(v.p_value, kAlpha) << c.desc << ", seed " << seed << "\n" << v.table;
    }
}

// The source-IP hash reads every word of the source address, and nothing else: a client
// keeps its backend whatever its port or the frontend address it connects to.
TEST_P(FlowHashWord, TheSourceHashReadsTheSourceAddressOnly) {
    const auto& c = GetParam();
    for (const __u64 seed : kSeeds) {
        const __u32 base = ts_source_hash(c.base.saddr, seed);
        std::vector<uint64_t> buckets(16, 0);
        uint32_t same = 0;
        for (uint32_t i = 0; i < kValues; ++i) {
            Flow f = c.base;
            c.set(f, i);
            const __u32 h = ts_source_hash(f.saddr, seed);
            ++buckets[h % TS_TABLE_SLOTS % 16];
            same += h == base;
        }
        if (c.in_source) {
            const auto v = chi_square_split(buckets, std::vector<double>(16, 1.0));
            EXPECT_GE(v.p_value, kAlpha) << c.desc << ", seed " << seed << "\n" << v.table;
        } else {
            EXPECT_EQ(same, kValues) << c.desc << " changed the source hash, seed " << seed;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(
    Table, FlowHashWord,
    ::testing::Values(
        WordCase{.desc = "IPv4 source addresses",
                 .base = ipv4_flow(),
                 .set = [](Flow& f, uint32_t i) { f.saddr[0] = htonl(0x7f010001 + i); },
                 .in_source = true},
        WordCase{.desc = "IPv4 frontend addresses",
                 .base = ipv4_flow(),
                 .set = [](Flow& f, uint32_t i) { f.daddr[0] = htonl(0x0a000001 + i); },
                 .in_source = false},
        WordCase{.desc = "source ports",
                 .base = ipv4_flow(),
                 .set = [](Flow& f, uint32_t i) { f.sport = static_cast<__u16>(32768 + i); },
                 .in_source = false},
        WordCase{.desc = "frontend ports",
                 .base = ipv4_flow(),
                 .set = [](Flow& f, uint32_t i) { f.dport = static_cast<__u16>(1024 + i); },
                 .in_source = false},
        WordCase{.desc = "IPv6 source word 0",
                 .base = ipv6_flow(),
                 .set = [](Flow& f, uint32_t i) { f.saddr[0] = htonl(0x20010000 + i); },
                 .in_source = true},
        WordCase{.desc = "IPv6 source word 1",
                 .base = ipv6_flow(),
                 .set = [](Flow& f, uint32_t i) { f.saddr[1] = htonl(0x00010000 + i); },
                 .in_source = true},
        WordCase{.desc = "IPv6 source word 2",
                 .base = ipv6_flow(),
                 .set = [](Flow& f, uint32_t i) { f.saddr[2] = htonl(0x0a0b0000 + i); },
                 .in_source = true},
        WordCase{.desc = "IPv6 source word 3",
                 .base = ipv6_flow(),
                 .set = [](Flow& f, uint32_t i) { f.saddr[3] = htonl(1 + i); },
                 .in_source = true},
        WordCase{.desc = "IPv6 frontend word 0",
                 .base = ipv6_flow(),
                 .set = [](Flow& f, uint32_t i) { f.daddr[0] = htonl(0xfd000000 + i); },
                 .in_source = false},
        WordCase{.desc = "IPv6 frontend word 1",
                 .base = ipv6_flow(),
                 .set = [](Flow& f, uint32_t i) { f.daddr[1] = htonl(i); },
                 .in_source = false},
        WordCase{.desc = "IPv6 frontend word 2",
                 .base = ipv6_flow(),
                 .set = [](Flow& f, uint32_t i) { f.daddr[2] = htonl(i); },
                 .in_source = false},
        WordCase{.desc = "IPv6 frontend word 3",
                 .base = ipv6_flow(),
                 .set = [](Flow& f, uint32_t i) { f.daddr[3] = htonl(1 + i); },
                 .in_source = false}),
    [](const ::testing::TestParamInfo<WordCase>& info) { return test_case_name(info.param.desc); });

// Many IPv4 clients, one connection each from the same port, split 20/80 through a real
// table, as the e2e tests' clients from 127.1.x.y do.
TEST(FlowHash, ManySourceAddressesFollowTheTable) {
    const auto table = build_weight_table({{.id = 0, .name = "a", .weight = 20}, {.id = 1, .name = "b", .weight = 80}},
                                          TS_TABLE_SLOTS, TS_NO_BACKEND);
    std::vector<uint64_t> counts(2, 0);
    for (uint32_t i = 0; i < 10000; ++i) {
        Flow f = ipv4_flow();
        f.saddr[0] = htonl(0x7f010001 + i);
        ++counts[table[flow_hash_of(f, 42) % TS_TABLE_SLOTS]];
    }
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
