// The kernel's SLIs of a backend's closed connections (backend_sli, backend_health), as `stats`
// reports them: exact where the kernel sees the event itself. Each connection that a backend
// resets after payload went both ways is one reset_after_data; each connection it closes
// cleanly is none; every established connection that closed has a lifetime, and one with an
// RTT sample an RTT.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "faulty_backends.h"
#include "report_json.h"
#include "stats.h"
#include "steering_fixture.h"

namespace tcpshift::testing {
namespace {

using json = nlohmann::json;

TEST_F(SteeringTest, TheKernelsSlisCountEachResetAndEachLifetimeExactly) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])", {{"v1", 50, {"127.0.0.1:9001"}}, {"v2", 50, {"127.0.0.1:9002"}}}));
    auto in = enter();
    ResettingBackend v2(9002, "x\n");
    ASSERT_TRUE(v2.ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));

    const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), 400);
    // sock_ops counts a close as the socket reaches TCP_CLOSE, which may follow the reply.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const json stats = json::parse(tcpshift_here({"stats", "--json"}).out);
    ASSERT_TRUE(backend_of(stats, "127.0.0.1:9001") && backend_of(stats, "127.0.0.1:9002")) << stats.dump();
    const json one = *backend_of(stats, "127.0.0.1:9001"), two = *backend_of(stats, "127.0.0.1:9002");
    std::cout << "[ figures ] SLIs: v1 " << one["measured"].dump() << "\n[ figures ] SLIs: v2 " << two["measured"].dump()
              << "\n";

    // Every v2 connection was reset by v2 after payload, and the clients saw each fail.
    EXPECT_EQ(t.failures, v2.reset()) << t.str();
    EXPECT_GT(v2.reset(), 100u) << t.str();
    EXPECT_EQ(two["measured"]["failures"]["reset_after_data"], v2.reset()) << two.dump();
    EXPECT_EQ(two["measured"]["failures"]["closed_before_data"], 0) << "it wrote first: " << two.dump();
    EXPECT_EQ(one["measured"]["failures"]["reset_after_data"], 0) << one.dump();
    EXPECT_EQ(one["measured"]["failures"]["closed_before_data"], 0) << one.dump();
    EXPECT_EQ(t["one"], one["closed"].get<uint64_t>()) << one.dump();

    // Each closed connection's lifetime is recorded; an RTT wherever the kernel had a sample.
    for (const json* b : {&one, &two}) {
        const uint64_t closed = (*b)["closed"];
        EXPECT_EQ((*b)["measured"]["lifetime"]["count"], closed) << b->dump();
        EXPECT_LE((*b)["measured"]["rtt"]["count"].get<uint64_t>(), closed) << b->dump();
        EXPECT_GT((*b)["measured"]["rtt"]["count"].get<uint64_t>(), closed / 2) << b->dump();
        // Loopback: every RTT under a millisecond, every lifetime under a second.
        EXPECT_LE((*b)["measured"]["rtt"]["p99_at_most_us"].get<int64_t>(), 1024) << b->dump();
        EXPECT_LE((*b)["measured"]["lifetime"]["p99_at_most_us"].get<int64_t>(), 1024000) << b->dump();
        EXPECT_GE((*b)["measured"]["lifetime"]["p99_at_most_us"].get<int64_t>(), 1000) << b->dump();
    }
}

// The reasons are exclusive: a backend that resets what it accepts, having written nothing, is
// counted as closed before data, never also as a reset after data (the client had written).
TEST_F(SteeringTest, EachFailedConnectionCountsUnderOneReason) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])", {{"v1", 50, {"127.0.0.1:9001"}}, {"v3", 50, {"127.0.0.1:9003"}}}));
    auto in = enter();
    ResettingBackend v3(9003);
    ASSERT_TRUE(v3.ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), 300);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const json stats = json::parse(tcpshift_here({"stats", "--json"}).out);
    ASSERT_TRUE(backend_of(stats, "127.0.0.1:9003")) << stats.dump();
    const json failures = (*backend_of(stats, "127.0.0.1:9003"))["measured"]["failures"];
    EXPECT_EQ(t.failures, v3.reset()) << t.str();
    // A reset that beats sock_ops to the new connection goes uncounted (README): at most a few.
    EXPECT_LE(failures["closed_before_data"].get<uint64_t>(), v3.reset()) << failures.dump();
    EXPECT_GE(failures["closed_before_data"].get<uint64_t>() + 5, v3.reset()) << failures.dump();
    EXPECT_EQ(failures["reset_after_data"], 0) << failures.dump();
    EXPECT_EQ(failures["reset_without_data"], 0) << failures.dump();
}

}  // namespace
}  // namespace tcpshift::testing
