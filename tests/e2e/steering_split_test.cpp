// Weighted steering: real tcp-echo backends and clients in a network namespace per test, each
// split judged by chi-square; and what status and stats report afterwards.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "report_json.h"
#include "steering_fixture.h"

namespace tcpshift::testing {
namespace {

TEST_F(SteeringTest, BackendsFirstThenApplyFiftyFiftyThenTwentyEighty) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(tcp_echo(50, 50));
    {
        auto in = enter();
        expect_split(endpoint("127.0.0.1:31400"), {"one", "two"}, {50, 50});
    }
    const auto r = tcpshift_here({"set", "tcp-echo", "v1=20", "v2=80"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto in = enter();
    expect_split(endpoint("127.0.0.1:31400"), {"one", "two"}, {20, 80});
}

TEST_F(SteeringTest, ApplyFirstThenBackendsFiftyFiftyThenTwentyEighty) {
    apply(tcp_echo(50, 50));
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    {
        auto in = enter();
        expect_split(endpoint("127.0.0.1:31400"), {"one", "two"}, {50, 50});
    }
    apply(tcp_echo(20, 80));  // a re-apply replaces the resource
    auto in = enter();
    expect_split(endpoint("127.0.0.1:31400"), {"one", "two"}, {20, 80});
}

TEST_F(SteeringTest, ThreeSubsetsTenThirtySixty) {
    Child a = start_echo(netns(), "127.0.0.1:9001", "one");
    Child b = start_echo(netns(), "127.0.0.1:9002", "two");
    Child c = start_echo(netns(), "127.0.0.1:9003", "three");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                        {{"v1", 10, {"127.0.0.1:9001"}}, {"v2", 30, {"127.0.0.1:9002"}}, {"v3", 60, {"127.0.0.1:9003"}}}));
    auto in = enter();
    expect_split(endpoint("127.0.0.1:31400"), {"one", "two", "three"}, {10, 30, 60}, 3000);
}

TEST_F(SteeringTest, WeightZeroTakesNoNewConnections) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(tcp_echo(0, 100));
    auto in = enter();
    const Tally t = tally(endpoint("127.0.0.1:31400"), 1000);
    EXPECT_EQ(t.failures, 0u) << t.str();
    EXPECT_EQ(t["one"], 0u) << t.str();
    EXPECT_EQ(t["two"], 1000u) << t.str();
}

// Around a flip, sk_lookup remembers each flow's backend so that a handshake under way keeps
// it. A client that opens thousands of connections a second from one address reuses its
// source ports within seconds; a memory kept past the handshake would send each reused
// 4-tuple to its backend of before the flip, for as long as the memory lasts (60 s).
TEST_F(SteeringTest, AfterAShiftAClientThatReusesItsPortsAtOnceIsDrawnByTheNewWeights) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(tcp_echo(50, 50));
    Child clients = Child::start(netns(), {TCPSHIFT_LOADGEN_BIN, "-t", "127.0.0.1:31400", "-c", "2", "-d", "9000"},
                                 std::chrono::milliseconds(0));
    std::this_thread::sleep_for(std::chrono::seconds(3));  // every source port in use, and reused
    ASSERT_EQ(tcpshift_here({"set", "tcp-echo", "v1=100", "v2=0"}).exit_code, 0);
    const auto v2_opened = [&] {
        const auto stats = nlohmann::json::parse(tcpshift_here({"stats", "--json"}).out);
        const nlohmann::json* b = backend_of(stats, "127.0.0.1:9002");
        return b ? (*b)["opened"].get<uint64_t>() : 0;
    };
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // handshakes of before the flip
    const uint64_t after_flip = v2_opened();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    const uint64_t later = v2_opened();
    std::cout << "[ figures ] v2 opened " << after_flip << " by 0.5 s after the flip, " << later - after_flip
              << " in the 3 s after\n";
    EXPECT_GT(after_flip, 1000u) << "the client reused its ports before the flip";
    EXPECT_EQ(later, after_flip) << "connections went to v2 at weight 0";
}

TEST_F(SteeringTest, StatusAndStatsReportWhatHappened) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    apply(tcp_echo(20, 80));
    {
        auto in = enter();
        tally(endpoint("127.0.0.1:31400"), 100);
    }
    const auto status = tcpshift_here({"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    const auto s = nlohmann::json::parse(status.out);
    EXPECT_TRUE(s["attached"].get<bool>());
    const auto& subsets = s["services"][0]["subsets"];
    EXPECT_TRUE(subsets[0]["backends"][0]["ready"].get<bool>());
    EXPECT_FALSE(subsets[1]["backends"][0]["ready"].get<bool>());
    EXPECT_DOUBLE_EQ(subsets[1]["percent"].get<double>(), 80.0);

    const auto stats = tcpshift_here({"stats", "--json"});
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    const auto j = nlohmann::json::parse(stats.out);
    const auto& svc = j["services"][0];
    EXPECT_EQ(svc["lookups"].get<uint64_t>(), 100u);
    EXPECT_EQ(svc["subsets"][0]["steered"].get<uint64_t>(), 100u);
    EXPECT_GT(svc["fallbacks"].get<uint64_t>(), 0u) << "v2 has no listener, so its share fell back";
    EXPECT_EQ(svc["refused"].get<uint64_t>(), 0u);
}

}  // namespace
}  // namespace tcpshift::testing
