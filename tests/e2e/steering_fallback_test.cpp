// Backends that stop: their share falls back to the live ones by weight, a service with none
// refuses at once, and a restarted backend is picked up with no command.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "stats.h"
#include "steering_fixture.h"

namespace tcpshift::testing {
namespace {

// A dead backend's share is re-drawn over the live ones in proportion to their weights
// (DESIGN.md, "Fallback keeps the weights"): with v2 (40) dead, v1 (20) and v3 (40) split
// 1:2, not 1:1 and not all to one of them.
TEST_F(SteeringTest, AStoppedBackendsShareGoesToTheOthersWithNoRefusal) {
    Child a = start_echo(netns(), "127.0.0.1:9001", "one");
    Child b = start_echo(netns(), "127.0.0.1:9002", "two");
    Child c = start_echo(netns(), "127.0.0.1:9003", "three");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                        {{"v1", 20, {"127.0.0.1:9001"}}, {"v2", 40, {"127.0.0.1:9002"}}, {"v3", 40, {"127.0.0.1:9003"}}}));
    b.stop(SIGKILL);
    const std::vector<double> renormalised{20, 0, 40};
    ASSERT_LE(sample_size_for(renormalised, 0.05), kConnections);
    auto in = enter();
    const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), kConnections);
    EXPECT_EQ(t.failures, 0u) << t.str();
    EXPECT_EQ(t["two"], 0u) << t.str();
    EXPECT_EQ(t["one"] + t["three"], kConnections) << t.str();
    const SplitVerdict v = chi_square_split({t["one"], t["two"], t["three"]}, renormalised);
    EXPECT_GE(v.p_value, kAlpha) << "the dead share is not spread by weight: " << t.str() << "\n" << v.table;
}

TEST_F(SteeringTest, AllBackendsStoppedRefusesAtOnce) {
    {
        Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
        Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
        apply(tcp_echo(50, 50));
    }  // both killed here
    auto in = enter();
    for (int i = 0; i < 50; ++i) {
        const auto start = std::chrono::steady_clock::now();
        const EchoResult r = echo_once(endpoint("127.0.0.1:31400"), "hello", std::chrono::seconds(2));
        const auto took = std::chrono::steady_clock::now() - start;
        ASSERT_FALSE(r.ok);
        ASSERT_EQ(r.error, "connect: ECONNREFUSED") << "refused by a reset, not left to time out";
        // A reset comes back within the round trip; a timeout would take the full 2 s.
        ASSERT_LT(took, std::chrono::seconds(1));
    }
}

TEST_F(SteeringTest, ARestartedBackendIsPickedUpWithoutAnyCommand) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(tcp_echo(50, 50));
    v2.stop(SIGKILL);
    {
        auto in = enter();
        const Tally t = tally(endpoint("127.0.0.1:31400"), 200);
        EXPECT_EQ(t["one"], 200u) << t.str();
    }
    v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    ASSERT_FALSE(v2.first_line().empty()) << "v2 did not start again";
    auto in = enter();
    expect_split(endpoint("127.0.0.1:31400"), {"one", "two"}, {50, 50});
}

}  // namespace
}  // namespace tcpshift::testing
