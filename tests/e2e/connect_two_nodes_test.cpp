// Two nodes, each with tcpshift attached to a cgroup of its own and the same frontend,
// 10.96.0.50:9000, over different backend pods: a client in one node's cgroup is steered by
// that node's tables only, and each node counts only its own connections.
#include <gtest/gtest.h>

#include "connect_fixture.h"

namespace tcpshift::testing {
namespace {

constexpr uint64_t kConnections = 1000;

struct NodeCase {
    std::string desc;
    AttachedNode* node;
    std::vector<std::string> words;
    std::vector<double> weights;
    std::map<std::string, std::string> word_of;
};

TEST(ConnectTwoNodes, EachCgroupIsSteeredByItsOwnNodeAndEachNodeCountsItsOwn) {
    TCPSHIFT_REQUIRE_ROOT();
    // Node B's pods sit at other addresses than node A's: a client of A steered by B's
    // tables would ask A's bridge for addresses nothing holds, and fail.
    AttachedNode a(tcp_echo_pods());
    AttachedNode b({{.name = "v1", .index = 21, .word = "three"}, {.name = "v2", .index = 22, .word = "four"}});
    ASSERT_TRUE(a.ok()) << a.error();
    ASSERT_TRUE(b.ok()) << b.error();
    a.apply(traffic_shift("tcp-echo", {kFrontendV4},
                          {{.name = "v1", .weight = 20, .backends = {"10.244.0.11:9000"}},
                           {.name = "v2", .weight = 80, .backends = {"10.244.0.12:9000"}}}));
    b.apply(traffic_shift("tcp-echo", {kFrontendV4},
                          {{.name = "v1", .weight = 50, .backends = {"10.244.0.21:9000"}},
                           {.name = "v2", .weight = 50, .backends = {"10.244.0.22:9000"}}}));
    const std::vector<NodeCase> cases{
        {.desc = "node A",
         .node = &a,
         .words = {"one", "two"},
         .weights = {20, 80},
         .word_of = {{"10.244.0.11:9000", "one"}, {"10.244.0.12:9000", "two"}}},
        {.desc = "node B",
         .node = &b,
         .words = {"three", "four"},
         .weights = {50, 50},
         .word_of = {{"10.244.0.21:9000", "three"}, {"10.244.0.22:9000", "four"}}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        ASSERT_TRUE(answers(*c.node, kFrontendV4));
        AttachedNode& other = c.node == &a ? b : a;
        const auto before = c.node->stats(), other_before = other.stats();
        const auto summary = c.node->load(kFrontendV4, kConnections);
        const auto after = c.node->stats(), other_after = other.stats();
        expect_all_answered(summary, kConnections);
        expect_split(summary, c.words, c.weights);
        expect_opened_match_replies(before, after, c.word_of, summary);
        EXPECT_EQ(connect_rewrites(after) - connect_rewrites(before), kConnections) << after.dump();
        EXPECT_EQ(connect_rewrites(other_after), connect_rewrites(other_before)) << other_after.dump();
        EXPECT_EQ(opened_by_backend(other_after), opened_by_backend(other_before)) << other_after.dump();
    }
}

}  // namespace
}  // namespace tcpshift::testing
