// Connect-time steering in both families: an IPv6 frontend splits to IPv6 pods, and an IPv4
// frontend reached through a dual-stack IPv6 socket, as ::ffff:10.96.0.50, splits to the IPv4
// pods. Each is judged by chi-square, with exact counts.
#include <gtest/gtest.h>

#include "connect_fixture.h"

namespace tcpshift::testing {
namespace {

constexpr uint64_t kConnections = 2000;

// One service for both families: each subset has its pod's IPv4 and IPv6 address, and a
// frontend draws from the table of its own family.
std::string dual_stack_service() {
    return traffic_shift("tcp-echo", {kFrontendV4, kFrontendV6},
                         {{.name = "v1", .weight = 20, .backends = {"10.244.0.11:9000", "[fd00:244::11]:9000"}},
                          {.name = "v2", .weight = 80, .backends = {"10.244.0.12:9000", "[fd00:244::12]:9000"}}});
}

TEST_F(ConnectTest, BothFamiliesAndAVFourMappedDestinationSplitTwentyEighty) {
    TCPSHIFT_REQUIRE_ROOT();
    node().apply(dual_stack_service());
    struct Case {
        std::string desc;
        std::string target;
        std::map<std::string, std::string> word_of;  // the backends that must have answered
    };
    const std::map<std::string, std::string> v4{{"10.244.0.11:9000", "one"}, {"10.244.0.12:9000", "two"}};
    const std::map<std::string, std::string> v6{{"[fd00:244::11]:9000", "one"}, {"[fd00:244::12]:9000", "two"}};
    const std::vector<Case> cases{
        {.desc = "IPv6 pods behind an IPv6 frontend", .target = kFrontendV6, .word_of = v6},
        {.desc = "an IPv4 frontend through a dual-stack socket", .target = "[::ffff:10.96.0.50]:9000", .word_of = v4},
        {.desc = "the IPv4 frontend itself", .target = kFrontendV4, .word_of = v4},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        ASSERT_TRUE(answers(node(), c.target));
        const auto before = node().stats();
        const auto summary = node().load(c.target, kConnections);
        const auto after = node().stats();
        expect_all_answered(summary, kConnections);
        expect_split(summary, {"one", "two"}, {20, 80});
        // The other family's backends took none of these connections.
        std::map<std::string, std::string> word_of = c.word_of;
        for (const auto& [address, word] : (c.word_of == v4 ? v6 : v4)) word_of[address] = "none";
        expect_opened_match_replies(before, after, word_of, summary);
        EXPECT_EQ(connect_rewrites(after) - connect_rewrites(before), kConnections) << after.dump();
    }
}

}  // namespace
}  // namespace tcpshift::testing
