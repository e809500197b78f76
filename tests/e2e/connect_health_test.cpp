// Health of connect-time backends, on a node of pods: a backend that dies mid-load (its
// process killed, or its pod cut off the network) costs at most kFailureBound failed
// connections before it is ejected; then its share goes to the others by weight, with no
// failure; and it takes connections again when it comes back, with no command. With the
// agent, its probe finds a dead backend with no client traffic at all.
//
// Each test prints one line of figures ("health figures: ..."); the README's bound comes
// from running them repeatedly (--gtest_repeat=5).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "client.h"
#include "connect_health_fixture.h"
#include "stats.h"

namespace tcpshift::testing {
namespace {

using std::chrono::milliseconds;

// Connections of a round that is not raced by an ejection's end: enough for the split to show
// a share 5 points off.
constexpr uint64_t kRound = 2000;
// The ejection outlasts the rest of the round in which the backend dies and the next round,
// which sees v1 and v2 alone: the dying round is kept shorter than the base ejection time,
// and the next one ends kMargin before the ejection does: room for a slow host's status read
// between the ejection's figure and the round.
constexpr milliseconds kDyingRound{800};
constexpr milliseconds kDiesAt{250};
constexpr milliseconds kMargin{1000};

const std::vector<double> kAll{20, 30, 50};
const std::vector<double> kWithoutV3{20, 30, 0};

// The failed connections of a round, by kind: {"refused": 3, "timeout": 1}.
std::string failure_kinds(const nlohmann::json& summary) {
    return summary.value("failures", nlohmann::json::object()).dump();
}

class ConnectHealth : public ConnectHealthTest {
   protected:
    // v3 dies `kDiesAt` into a round of load by `kill`; returns that round's summary.
    template <typename Kill>
    nlohmann::json round_in_which_v3_dies(Kill kill, milliseconds timeout) {
        std::thread killer([&] {
            std::this_thread::sleep_for(kDiesAt);
            kill();
        });
        const auto summary = load(kDyingRound, timeout);
        killer.join();
        return summary;
    }

    // After v3 died: the bound held, v3 is ejected and stays out with no failure while v1 and
    // v2 split its share 40/60; returns the failed connections.
    uint64_t expect_ejected_within_bound(const nlohmann::json& dying, const char* failure_kind) {
        const uint64_t failed = dying.value("failed", uint64_t{0});
        EXPECT_GE(failed, 1u) << "v3 died and nothing failed: " << dying.dump();
        EXPECT_LE(failed, kFailureBound) << dying.dump();
        EXPECT_GE(dying["failures"].value(failure_kind, uint64_t{0}), 1u) << failure_kinds(dying);
        const auto v3 = backend_status(3);
        EXPECT_EQ(v3.value("ready", true), false) << v3.dump();
        EXPECT_TRUE(v3.value("status", "").starts_with("no, ejected")) << v3.dump();
        const auto health = v3.value("health", nlohmann::json::object());
        EXPECT_EQ(health.value("ejections", uint64_t{0}), 1u) << v3.dump();
        // The next round ends before the ejection does.
        const milliseconds left(health.value("ejected_ms", int64_t{0}));
        EXPECT_GT(left, kMargin + milliseconds(300)) << v3.dump();
        const auto without_v3 = load(std::min(left - kMargin, milliseconds(3000)), milliseconds(1000));
        expect_split(without_v3, kWithoutV3);
        std::cout << "health figures: failed " << failed << " (bound " << kFailureBound << ") "
                  << failure_kinds(dying) << ", handshakes the kernel saw fail "
                  << health.value("failed_handshakes", uint64_t{0}) << ", ejected with "
                  << left.count() << " ms left; then " << without_v3.value("ok", 0) << " connections without v3"
                  << std::endl;
        return failed;
    }

    // v3 is back at its address: within the base ejection time (and a bounded wait) it takes
    // its share again, with no command.
    void expect_back_within_ejection() {
        const auto back =
            time_until([&] { return backend_status(3).value("ready", false); }, kBaseEjection + milliseconds(1000));
        ASSERT_TRUE(back) << "v3 is not ready again: " << backend_status(3).dump();
        std::cout << "health figures: v3 ready again " << back->count() << " ms after it came back" << std::endl;
        expect_split(load_n(kRound), kAll);
    }
};

TEST_F(ConnectHealth, AKilledBackendIsEjectedWithinTheBoundAndReturnsWithNoCommand) {
    apply(native_config());
    expect_split(load_n(kRound), kAll);

    const auto dying = round_in_which_v3_dies([&] { backends_[2].stop(SIGKILL); }, milliseconds(1000));
    expect_ejected_within_bound(dying, "refused");

    start_backend(2);
    expect_back_within_ejection();
}

// A pod cut off the network answers nothing: connects time out rather than being refused, so
// the load generator's bound on each connect (300 ms here) is when the failures are seen.
TEST_F(ConnectHealth, AnUnreachablePodIsEjectedWithinTheBoundAndReturnsWithNoCommand) {
    apply(mesh_config());
    expect_split(load_n(kRound), kAll);

    const auto link = [&](const char* state) {
        const auto r = run_command({"/sbin/ip", "-n", node_->netns(), "link", "set", "vp13", state});
        EXPECT_EQ(r.exit_code, 0) << r.err;
    };
    const auto dying = round_in_which_v3_dies([&] { link("down"); }, milliseconds(300));
    expect_ejected_within_bound(dying, "timeout");

    link("up");
    expect_back_within_ejection();
}

TEST_F(ConnectHealth, TheAgentsProbeFindsADeadBackendWithNoTraffic) {
    const auto dir = std::filesystem::path(write_temp_file("agent-health", "")).parent_path() /
                     ("agent-health-" + node_->netns());
    std::filesystem::create_directories(dir);
    { std::ofstream(dir / "tcp-echo.yaml") << native_config(); }
    const std::string log = (dir / "agent.log").string();
    const int port = free_port();
    bool healthy = false;
    agent_ = start_agent(node_->netns(), dir.string(), port, log, {"--probe-interval", "1s"}, &healthy);
    ASSERT_TRUE(healthy);
    const auto agent_log = [&] {
        std::ifstream in(log);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    };
    const std::string ready_v3 = R"(tcpshift_backend_ready{service="tcp-echo",subset="v3",backend="10.244.0.13:9000"})";
    const auto ready_metric = [&] { return metric_value(http_get(port, "/metrics").body, ready_v3); };
    EXPECT_EQ(ready_metric(), 1) << agent_log();

    backends_[2].stop(SIGKILL);
    const auto down = time_until([&] { return !backend_status(3).value("ready", true); }, milliseconds(2500));
    ASSERT_TRUE(down) << "the probe did not find v3 down: " << agent_log();
    EXPECT_EQ(backend_status(3).value("status", ""), "no, probe failed");
    EXPECT_EQ(ready_metric(), 0);
    EXPECT_NE(agent_log().find("backend 10.244.0.13:9000 (tcp-echo/v3) is down: connect: ECONNREFUSED"),
              std::string::npos)
        << agent_log();
    // No client connection failed to find it out, and none fails now.
    expect_split(load_n(kRound), kWithoutV3);

    start_backend(2);
    const auto back = time_until([&] { return backend_status(3).value("ready", false); }, milliseconds(2500));
    ASSERT_TRUE(back) << "the probe did not find v3 back: " << agent_log();
    EXPECT_EQ(ready_metric(), 1);
    EXPECT_NE(agent_log().find("backend 10.244.0.13:9000 (tcp-echo/v3) answers again"), std::string::npos)
        << agent_log();
    std::cout << "health figures: probe every 1 s: down after " << down->count() << " ms, back after "
              << back->count() << " ms" << std::endl;
    expect_split(load_n(kRound), kAll);
}

// With loadBalancer.warmup, a connect-time backend that the probe finds back ramps up: its
// share starts at a tenth of its weight's, and the others keep their ratio.
TEST_F(ConnectHealth, ABackendTheProbeFindsBackWarmsUp) {
    const auto dir = std::filesystem::path(write_temp_file("agent-warmup", "")).parent_path() /
                     ("agent-warmup-" + node_->netns());
    std::filesystem::create_directories(dir);
    constexpr uint64_t kWarmupMs = 30000;
    {
        std::ofstream(dir / "tcp-echo.yaml")
            << native_config() << "  policy:\n    loadBalancer: {simple: RANDOM, warmup: {duration: 30s}}\n";
    }
    bool healthy = false;
    agent_ = start_agent(node_->netns(), dir.string(), free_port(), (dir / "agent.log").string(),
                         {"--probe-interval", "1s"}, &healthy);
    ASSERT_TRUE(healthy);
    EXPECT_TRUE(backend_status(3)["warmup"].is_null()) << "ready since it was applied: no warmup";

    backends_[2].stop(SIGKILL);
    ASSERT_TRUE(time_until([&] { return !backend_status(3).value("ready", true); }, milliseconds(2500)));
    start_backend(2);
    ASSERT_TRUE(time_until([&] { return backend_status(3).value("ready", false); }, milliseconds(2500)));
    const auto warming = backend_status(3);
    EXPECT_NE(warming.value("status", "").find("warming up"), std::string::npos) << warming.dump();
    ASSERT_TRUE(warming["warmup"].is_object()) << warming.dump();

    const auto summary = load_n(kRound);
    const auto after = backend_status(3);
    const uint64_t ready_for = after["warmup"].is_object() ? after["warmup"].value("ready_for_ms", kWarmupMs) : kWarmupMs;
    EXPECT_EQ(summary.value("failed", uint64_t{1}), 0u) << summary.dump();
    const auto by_reply = summary.value("by_reply", nlohmann::json::object());
    const double v1 = by_reply.value("v1", 0.0), v2 = by_reply.value("v2", 0.0), v3 = by_reply.value("v3", 0.0);
    // Its weight of 50 scaled by at most the factor at the end of the round.
    const double f = std::max(0.1, std::min(1.0, static_cast<double>(std::max<uint64_t>(ready_for, 1000)) / kWarmupMs));
    const double most = 50 * f / (50 + 50 * f), got = v3 / (v1 + v2 + v3);
    std::cout << "health figures: warming v3 took " << got * 100 << "% of " << v1 + v2 + v3 << " connections in its first "
              << ready_for << " ms back (at most " << most * 100 << "% by the factor; 50% without warmup)" << std::endl;
    EXPECT_LE(got, most + 3.5 * std::sqrt(most * (1 - most) / (v1 + v2 + v3)) + 0.01) << summary.dump();
    EXPECT_GT(v3, 0) << "minimumPercent keeps it in the draw: " << summary.dump();
    const SplitVerdict split = chi_square_split({static_cast<uint64_t>(v1), static_cast<uint64_t>(v2)}, {20, 30});
    EXPECT_GE(split.p_value, kAlpha) << split.table;
}

}  // namespace
}  // namespace tcpshift::testing
