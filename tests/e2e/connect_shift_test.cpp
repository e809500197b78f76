// A hitless shift at connect time: `set` changes the weights while long-lived connections
// echo through it and short ones keep coming. No long-lived connection moves or fails, every
// connection is still counted to its close, and new connections follow the new weights.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "connect_fixture.h"

namespace tcpshift::testing {
namespace {

constexpr uint64_t kConnections = 2000;
constexpr unsigned kLongLived = 40;

std::string service(int v1, int v2) {
    return traffic_shift("tcp-echo", {kFrontendV4},
                         {{.name = "v1", .weight = v1, .backends = {"10.244.0.11:9000"}},
                          {.name = "v2", .weight = v2, .backends = {"10.244.0.12:9000"}}});
}

// Polls for up to 3 s until every backend closed as many connections as it opened: each close
// is counted on the client's socket, so the counts survive the shift only if its state did.
void expect_every_connection_closed(const AttachedNode& node) {
    nlohmann::json stats;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    const auto all_closed = [&] {
        for (const auto& b : stats.value("backends", nlohmann::json::array()))
            if (b.value("opened", 0) == 0 || b.value("closed", 0) != b.value("opened", 0)) return false;
        return true;
    };
    do {
        stats = node.stats();
        if (all_closed()) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } while (std::chrono::steady_clock::now() < deadline);
    ADD_FAILURE() << "opened and closed differ 3 s after the last connection: " << stats.dump();
}

// Shifts from one split to another during a load with long-lived connections; returns the
// load's summary.
nlohmann::json shift_under_load(AttachedNode& node, int to_v1, int to_v2) {
    std::atomic<bool> done{false};
    nlohmann::json summary;
    std::thread load([&] {
        summary = node.load(
            {.target = kFrontendV4,
             .connections = 1000000,
             .concurrency = 2,
             .extra = {"--duration-ms", "3000", "--long-lived", std::to_string(kLongLived), "--interval-ms", "50"}});
        done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    const auto set =
        node.tcpshift_node({"set", "tcp-echo", "v1=" + std::to_string(to_v1), "v2=" + std::to_string(to_v2)});
    EXPECT_EQ(set.exit_code, 0) << set.err;
    EXPECT_FALSE(done) << "the load ended before the shift: it did not happen under load";
    load.join();
    return summary;
}

TEST_F(ConnectTest, ASetUnderLoadMovesNoLongLivedConnectionAndNewOnesFollowTheNewWeights) {
    TCPSHIFT_REQUIRE_ROOT();
    struct Case {
        std::string desc;
        int from_v1, from_v2, to_v1, to_v2;
    };
    const std::vector<Case> cases{
        {.desc = "20/80 to 80/20", .from_v1 = 20, .from_v2 = 80, .to_v1 = 80, .to_v2 = 20},
        {.desc = "all to v1, then all to v2", .from_v1 = 100, .from_v2 = 0, .to_v1 = 0, .to_v2 = 100},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        node().apply(service(c.from_v1, c.from_v2));
        ASSERT_TRUE(answers(node(), kFrontendV4));
        const auto summary = shift_under_load(node(), c.to_v1, c.to_v2);
        EXPECT_EQ(summary.value("failed", uint64_t{1}), 0u) << summary.dump();
        EXPECT_GT(summary.value("ok", uint64_t{0}), 0u) << summary.dump();
        const auto long_lived = summary.value("long_lived", nlohmann::json::object());
        ::testing::Test::RecordProperty("long_lived " + c.desc, long_lived.dump());
        EXPECT_EQ(long_lived.value("opened", 0u), kLongLived) << long_lived.dump();
        EXPECT_EQ(long_lived.value("failed", uint64_t{1}), 0u) << long_lived.dump();
        EXPECT_EQ(long_lived.value("moved", uint64_t{1}), 0u) << long_lived.dump();
        // About 60 rounds at 50 ms: they echoed right through the shift.
        EXPECT_GE(long_lived.value("echoes", uint64_t{0}), 40u * kLongLived) << long_lived.dump();
        expect_every_connection_closed(node());

        const auto after = node().load(kFrontendV4, kConnections);
        expect_all_answered(after, kConnections);
        expect_split(after, {"one", "two"}, {static_cast<double>(c.to_v1), static_cast<double>(c.to_v2)});
    }
}

}  // namespace
}  // namespace tcpshift::testing
