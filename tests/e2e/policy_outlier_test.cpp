// outlierDetection for a backend that listens here: a steered connection that the backend resets
// or closes within a second, having written nothing, is a failure. consecutiveErrors of them
// eject it for baseEjectionTime (times the ejections in a row); meanwhile its share goes to the
// others by weight, status says so, and a connection the backend answers clears the count.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "base/fd.h"
#include "faulty_backends.h"
#include "report_json.h"
#include "stats.h"
#include "steering_fixture.h"

namespace tcpshift::testing {
namespace {

using json = nlohmann::json;

TEST_F(SteeringTest, ABackendThatResetsAtOnceIsEjectedItsShareGoesByWeightAndItReturns) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                        {{"v1", 20, {"127.0.0.1:9001"}}, {"v2", 30, {"127.0.0.1:9002"}}, {"v3", 50, {"127.0.0.1:9003"}}},
                        "  outlierDetection: {consecutiveErrors: 3, baseEjectionTime: 15s}\n"));
    auto in = enter();
    ResettingBackend v3(9003);
    ASSERT_TRUE(v3.ok());
    const Endpoint frontend = endpoint("127.0.0.1:31400");
    const auto status = [&] { return json::parse(tcpshift_here({"status", "--json"}).out); };
    // sock_ops registers v3's listener as it listens; the agent is not needed.
    for (int i = 0; i < 100 && !(*backend_of(status(), "127.0.0.1:9003"))["ready"].get<bool>(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));

    // One client at a time: the third judged reset ejects v3, and nothing fails after it. A
    // reset can beat sock_ops to the new connection (the backend accepts and closes it before
    // the kernel runs the establishment callback) and go unjudged: a few more may fail first.
    const Tally first = tally_from_many_sources(frontend, 60);
    const json ejected = status();
    const json& v3_now = *backend_of(ejected, "127.0.0.1:9003");
    EXPECT_GE(first.failures, 3u) << first.str() << "\n" << v3_now.dump();
    EXPECT_LE(first.failures, 6u) << first.str() << "\n" << v3_now.dump();
    EXPECT_EQ(v3.reset(), first.failures) << "a failure that was not v3's";
    EXPECT_EQ(v3_now["health"]["failed_handshakes"], 3) << v3_now.dump();
    const uint64_t reset_before = v3.reset();
    EXPECT_FALSE(v3_now["ready"].get<bool>()) << v3_now.dump();
    EXPECT_NE(v3_now["status"].get<std::string>().find("ejected for"), std::string::npos) << v3_now.dump();
    EXPECT_GT(v3_now["health"]["ejected_ms"].get<uint64_t>(), 10000u) << v3_now.dump();
    EXPECT_EQ(v3_now["health"]["ejections"], 1) << v3_now.dump();
    // The backends that answer are never judged failed.
    EXPECT_TRUE((*backend_of(ejected, "127.0.0.1:9001"))["health"].is_null()) << ejected.dump();
    EXPECT_TRUE((*backend_of(ejected, "127.0.0.1:9002"))["health"].is_null()) << ejected.dump();

    // Ejected, its 50% goes to v1 and v2 as 20 to 30, not to its neighbour in the list.
    const Tally during = tally_from_many_sources(frontend, 800);
    ASSERT_EQ(during.failures, 0u) << during.str();
    EXPECT_EQ(v3.reset(), reset_before) << "v3 took connections while ejected";
    const SplitVerdict v = chi_square_split({during["one"], during["two"]}, {20, 30});
    EXPECT_GE(v.p_value, kAlpha) << during.str() << "\n" << v.table;
    const auto ejected_ms = (*backend_of(status(), "127.0.0.1:9003"))["health"]["ejected_ms"].get<uint64_t>();
    ASSERT_GT(ejected_ms, 0u) << "the ejection ended before the split was measured; too slow a host";

    // After baseEjectionTime it takes connections again: still resetting, it is ejected again
    // after three more, for twice as long.
    std::this_thread::sleep_for(std::chrono::milliseconds(ejected_ms + 200));
    const Tally again = tally_from_many_sources(frontend, 60);
    const json twice = *backend_of(status(), "127.0.0.1:9003");
    EXPECT_GE(again.failures, 3u) << again.str() << "\n" << twice.dump();
    EXPECT_LE(again.failures, 6u) << again.str() << "\n" << twice.dump();
    EXPECT_EQ(v3.reset(), reset_before + again.failures);
    EXPECT_EQ(twice["health"]["failed_handshakes"], 6) << twice.dump();
    EXPECT_EQ(twice["health"]["ejections"], 2) << twice.dump();
    EXPECT_GT(twice["health"]["ejected_ms"].get<uint64_t>(), 25000u) << twice.dump();
}

TEST_F(SteeringTest, MaxEjectionPercentBoundsHowManyBackendsAreOutAtOnce) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    const auto config = [](int max_percent) {
        return traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                             {{"v1", 20, {"127.0.0.1:9001"}},
                              {"v2", 30, {"127.0.0.1:9002"}},
                              {"v3", 25, {"127.0.0.1:9003"}},
                              {"v4", 25, {"127.0.0.1:9004"}}},
                             "  outlierDetection: {consecutiveErrors: 3, baseEjectionTime: 60s, maxEjectionPercent: " +
                                 std::to_string(max_percent) + "}\n");
    };
    apply(config(10));
    auto in = enter();
    ResettingBackend v3(9003), v4(9004);
    ASSERT_TRUE(v3.ok() && v4.ok());
    const Endpoint frontend = endpoint("127.0.0.1:31400");
    const auto status = [&] { return json::parse(tcpshift_here({"status", "--json"}).out); };
    const auto ejected = [](const json& st, const std::string& address) {
        const json* b = backend_of(st, address);
        return b && !(*b)["health"].is_null() && (*b)["health"]["ejected_ms"].get<uint64_t>() > 0;
    };
    std::this_thread::sleep_for(std::chrono::milliseconds(200));

    // 10% of 4 backends is none, but one may always go: the first to fail 3 times is out, the
    // other keeps its share and keeps failing.
    const Tally t10 = tally_from_many_sources(frontend, 300);
    const json at10 = status();
    EXPECT_EQ(ejected(at10, "127.0.0.1:9003") + ejected(at10, "127.0.0.1:9004"), 1) << at10.dump();
    EXPECT_GT(t10.failures, 20u) << "the backend left in failed too rarely to show it stayed in: " << t10.str();

    // At 50% both may be out: the next failures eject the other, then nothing fails.
    apply(config(50));
    const Tally settle = tally_from_many_sources(frontend, 100);
    const json at50 = status();
    EXPECT_TRUE(ejected(at50, "127.0.0.1:9003") && ejected(at50, "127.0.0.1:9004")) << at50.dump();
    const uint64_t resets = v3.reset() + v4.reset();
    const Tally after = tally_from_many_sources(frontend, 500);
    EXPECT_EQ(after.failures, 0u) << after.str();
    EXPECT_EQ(v3.reset() + v4.reset(), resets);
    const SplitVerdict v = chi_square_split({after["one"], after["two"]}, {20, 30});
    EXPECT_GE(v.p_value, kAlpha) << after.str() << "\n" << v.table;

    // With the block removed nothing ejects, and the ejections under way end with it.
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                        {{"v1", 20, {"127.0.0.1:9001"}},
                         {"v2", 30, {"127.0.0.1:9002"}},
                         {"v3", 25, {"127.0.0.1:9003"}},
                         {"v4", 25, {"127.0.0.1:9004"}}}));
    const json off = status();
    EXPECT_FALSE(ejected(off, "127.0.0.1:9003") || ejected(off, "127.0.0.1:9004")) << off.dump();
    const Tally back = tally_from_many_sources(frontend, 100);
    EXPECT_GT(back.failures, 20u) << "v3 and v4 take their shares again: " << back.str();
}

// minHealthPercent: while fewer of the service's backends than the share are available, an
// ejected backend takes its weight like the others (Envoy's panic mode); above it, ejection
// holds.
TEST_F(SteeringTest, BelowMinHealthPercentAnEjectedBackendTakesItsWeightAgain) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    const auto config = [](int min_health) {
        return traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                             {{"v1", 20, {"127.0.0.1:9001"}}, {"v2", 30, {"127.0.0.1:9002"}}, {"v3", 50, {"127.0.0.1:9003"}}},
                             "  outlierDetection: {consecutiveErrors: 3, baseEjectionTime: 60s, minHealthPercent: " +
                                 std::to_string(min_health) + "}\n");
    };
    apply(config(80));
    auto in = enter();
    ResettingBackend v3(9003);
    ASSERT_TRUE(v3.ok());
    const Endpoint frontend = endpoint("127.0.0.1:31400");
    const auto status = [&] { return json::parse(tcpshift_here({"status", "--json"}).out); };
    std::this_thread::sleep_for(std::chrono::milliseconds(200));

    // Ejected after 3 failures, v3 leaves 2 of 3 backends available: 67%, under 80%. It keeps
    // its half, and fails it.
    const Tally panic = tally_from_many_sources(frontend, 400);
    const json during = status();
    const json& v3_during = *backend_of(during, "127.0.0.1:9003");
    ASSERT_FALSE(v3_during["health"].is_null()) << v3_during.dump();
    EXPECT_GT(v3_during["health"]["ejected_ms"].get<uint64_t>(), 0u) << v3_during.dump();
    EXPECT_TRUE(during["services"][0]["panic"].get<bool>()) << during.dump();
    const std::string text = tcpshift_here({"status"}).out;
    EXPECT_NE(text.find("panic: 2 of 3 backends available, under minHealthPercent 80%"), std::string::npos) << text;
    const SplitVerdict all = chi_square_split({panic["one"], panic["two"], panic.failures}, {20, 30, 50});
    EXPECT_GE(all.p_value, kAlpha) << panic.str() << "\n" << all.table;
    EXPECT_EQ(v3.reset(), panic.failures);

    // At 60% the two that answer are enough: the ejection holds, and nothing fails.
    apply(config(60));
    const json calm = status();
    EXPECT_FALSE(calm["services"][0]["panic"].get<bool>()) << calm.dump();
    EXPECT_GT((*backend_of(calm, "127.0.0.1:9003"))["health"]["ejected_ms"].get<uint64_t>(), 0u) << calm.dump();
    const Tally held = tally_from_many_sources(frontend, 400);
    EXPECT_EQ(held.failures, 0u) << held.str();
    const SplitVerdict two = chi_square_split({held["one"], held["two"]}, {20, 30});
    EXPECT_GE(two.p_value, kAlpha) << held.str() << "\n" << two.table;
}

// A full listen queue is a failure of the backend's: sk_lookup sees the listener's accept queue
// full as it hands it a SYN, counts it always, and with outlierDetection counts it toward
// ejection; ejected, its share goes to the others by weight.
TEST_F(SteeringTest, ABackendWhoseListenQueueIsFullIsEjected) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    const auto config = [](const std::string& outlier) {
        return traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                             {{"v1", 20, {"127.0.0.1:9001"}}, {"v2", 30, {"127.0.0.1:9002"}}, {"v3", 50, {"127.0.0.1:9003"}}},
                             outlier);
    };
    apply(config(""));
    auto in = enter();
    StuckListener v3(9003);
    ASSERT_TRUE(v3.ok());
    const Endpoint frontend = endpoint("127.0.0.1:31400");
    const auto status = [&] { return json::parse(tcpshift_here({"status", "--json"}).out); };
    std::this_thread::sleep_for(std::chrono::milliseconds(200));

    // Without outlierDetection nothing ejects: v3 keeps its half and fails it, and the kernel
    // counts the SYNs it dropped.
    const Tally kept = tally_from_many_sources(frontend, 40, std::chrono::milliseconds(300));
    const json before = *backend_of(status(), "127.0.0.1:9003");
    EXPECT_GT(kept.failures, 8u) << kept.str();
    ASSERT_FALSE(before["health"].is_null()) << before.dump();
    EXPECT_GE(before["health"]["listen_overflows"].get<uint64_t>(), kept.failures - 2) << before.dump();
    EXPECT_EQ(before["health"]["ejected_ms"], 0) << before.dump();

    // With it, three dropped SYNs eject v3 (its queue is still full).
    apply(config("  outlierDetection: {consecutiveErrors: 3, baseEjectionTime: 30s}\n"));
    const Tally ejecting = tally_from_many_sources(frontend, 100, std::chrono::milliseconds(300));
    const json after = *backend_of(status(), "127.0.0.1:9003");
    EXPECT_GE(ejecting.failures, 3u) << ejecting.str();
    EXPECT_LE(ejecting.failures, 4u) << ejecting.str();
    EXPECT_GT(after["health"]["ejected_ms"].get<uint64_t>(), 20000u) << after.dump();
    EXPECT_NE(after["status"].get<std::string>().find("full listen queue"), std::string::npos) << after.dump();

    const Tally held = tally_from_many_sources(frontend, 400);
    EXPECT_EQ(held.failures, 0u) << held.str();
    std::cout << "[ figures ] full listen queue: without outlierDetection " << kept.failures << " of 40 failed, "
              << before["health"]["listen_overflows"] << " SYNs dropped; with it " << ejecting.failures
              << " of 100 failed before the ejection, then " << held.failures << " of 400\n";
    const SplitVerdict v = chi_square_split({held["one"], held["two"]}, {20, 30});
    EXPECT_GE(v.p_value, kAlpha) << held.str() << "\n" << v.table;
}

TEST_F(SteeringTest, WithoutOutlierDetectionABackendThatResetsIsNeverEjected) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                        {{"v1", 50, {"127.0.0.1:9001"}}, {"v3", 50, {"127.0.0.1:9003"}}}));
    auto in = enter();
    ResettingBackend v3(9003);
    ASSERT_TRUE(v3.ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), 200);
    // Istio ejects nothing unless outlierDetection is written: v3 keeps its half, and fails it.
    const SplitVerdict v = chi_square_split({t["one"], t.failures}, {50, 50});
    EXPECT_GE(v.p_value, kAlpha) << t.str() << "\n" << v.table;
    EXPECT_EQ(v3.reset(), t.failures);
}

}  // namespace
}  // namespace tcpshift::testing
