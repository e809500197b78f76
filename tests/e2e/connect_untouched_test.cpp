// Every connect() in the cgroup passes through the program, but only one to an exact frontend
// is rewritten: connections to an unrelated pod on the frontend's port, on another port, to
// the frontend's address on another port, or straight to a backend pod reach what they asked
// for, and tcpshift counts none of them.
#include <gtest/gtest.h>

#include "connect_fixture.h"

namespace tcpshift::testing {
namespace {

constexpr uint64_t kConnections = 200;
constexpr int kUnrelatedIndex = 13;  // 10.244.0.13, fd00:244::13
constexpr uint16_t kOtherPort = 9100;

// An unrelated pod that also holds the frontend's address, 10.96.0.50, routed to it by the
// node: a connection to 10.96.0.50 that tcpshift leaves alone reaches this pod. It answers
// "unrelated" on port 9000 and "elsewhere" on 9100, on every address.
class UnrelatedPod {
 public:
    explicit UnrelatedPod(AttachedNode& node) : pod_(node.pods().add_pod("unrelated", kUnrelatedIndex)) {
        if (!node.pods().ok()) return;
        for (const std::vector<std::string>& argv :
             {std::vector<std::string>{"/sbin/ip", "-n", pod_.netns, "addr", "add", "10.96.0.50/32", "dev", "eth0"},
              {"/sbin/ip", "-n", node.netns(), "route", "add", "10.96.0.50/32", "via", pod_.ipv4}}) {
            const auto r = run_command(argv);
            if (r.exit_code != 0) {
                error_ = argv[3] + " " + argv[4] + ": " + r.err;
                return;
            }
        }
        on_port_ = start_echo(pod_.netns, "[::]:9000", "unrelated");
        on_other_port_ = start_echo(pod_.netns, "[::]:" + std::to_string(kOtherPort), "elsewhere");
        if (!on_port_.first_line().starts_with("listening") || !on_other_port_.first_line().starts_with("listening"))
            error_ = "the unrelated pod's echo servers did not start";
    }
    const std::string& error() const { return error_; }
    const Pod& pod() const { return pod_; }

 private:
    Pod pod_;
    Child on_port_, on_other_port_;
    std::string error_;
};

TEST_F(ConnectTest, ConnectionsToAddressesThatAreNotFrontendsAreLeftAlone) {
    TCPSHIFT_REQUIRE_ROOT();
    node().apply(
        traffic_shift("tcp-echo", {kFrontendV4, kFrontendV6},
                      {{.name = "v1", .weight = 20, .backends = {"10.244.0.11:9000", "[fd00:244::11]:9000"}},
                       {.name = "v2", .weight = 80, .backends = {"10.244.0.12:9000", "[fd00:244::12]:9000"}}}));
    UnrelatedPod unrelated(node());
    ASSERT_TRUE(node().pods().ok()) << node().pods().error();
    ASSERT_EQ(unrelated.error(), "");
    const Pod& other = unrelated.pod();
    struct Case {
        std::string desc;
        std::string target;
        std::string word;  // every reply
    };
    const std::vector<Case> cases{
        {.desc = "an unrelated pod on the frontend's port", .target = other.ipv4_endpoint(9000), .word = "unrelated"},
        {.desc = "the same over IPv6", .target = other.ipv6_endpoint(9000), .word = "unrelated"},
        {.desc = "an unrelated pod on another port", .target = other.ipv4_endpoint(kOtherPort), .word = "elsewhere"},
        {.desc = "the frontend's address on another port", .target = "10.96.0.50:9100", .word = "elsewhere"},
        {.desc = "a backend pod by its own address", .target = "10.244.0.11:9000", .word = "one"},
        {.desc = "a backend pod by its own IPv6 address", .target = "[fd00:244::12]:9000", .word = "two"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        ASSERT_TRUE(answers(node(), c.target));
        const auto before = node().stats();
        const auto summary = node().load(c.target, kConnections);
        const auto after = node().stats();
        expect_all_answered(summary, kConnections);
        EXPECT_EQ(replies(summary, c.word), kConnections) << summary.dump();
        EXPECT_EQ(connect_rewrites(after), connect_rewrites(before)) << after.dump();
        // A connection tcpshift did not steer is no backend's in its counts.
        EXPECT_EQ(opened_by_backend(after), opened_by_backend(before)) << after.dump();
    }
    // The programs were there all along: the frontend itself is steered, never to the pod
    // that holds its address.
    ASSERT_TRUE(answers(node(), kFrontendV4));
    const auto before = node().stats();
    const auto steered = node().load(kFrontendV4, kConnections);
    expect_all_answered(steered, kConnections);
    EXPECT_EQ(replies(steered, "unrelated"), 0u) << steered.dump();
    EXPECT_EQ(replies(steered, "one") + replies(steered, "two"), kConnections) << steered.dump();
    EXPECT_EQ(connect_rewrites(node().stats()) - connect_rewrites(before), kConnections);
}

}  // namespace
}  // namespace tcpshift::testing
