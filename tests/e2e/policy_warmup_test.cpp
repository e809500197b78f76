// loadBalancer.warmup: a backend whose listener starts (or starts again) takes its weight scaled
// by Envoy's slow-start factor, max(minimumPercent, (t / duration)^(1 / aggression)), until the
// duration has passed; the kernel draws again for the connections the factor turns away, so the
// others take them by weight. Each window of connections is judged against the factor at its
// start and end, as the kernel's own clock (status' ready_for_ms) places them.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include <bpf/bpf.h>

#include "base/fd.h"
#include "bpf/abi.h"
#include "dataplane/pins.h"
#include "report_json.h"
#include "stats.h"
#include "steering_fixture.h"

namespace tcpshift::testing {
namespace {

using json = nlohmann::json;

constexpr uint64_t kDurationMs = 10000;
constexpr size_t kWindow = 1000;
// How far a window's share of v2 may stray from `p`, what the factor gives: 3.5 standard
// deviations of the share of kWindow independent draws (RANDOM draws each connection anew),
// and a point for the factor's steps. A kernel that never drew a turned-away connection again
// would give v2 25% half-way, not 33.5%: 5.8 deviations off.
double tolerance(double p) { return 3.5 * std::sqrt(p * (1 - p) / kWindow) + 0.01; }

// Envoy's factor at `ms` after the backend became ready, with minimumPercent 10, aggression 1.
double factor(uint64_t ms) {
    if (ms >= kDurationMs) return 1;
    return std::max(0.1, static_cast<double>(std::max<uint64_t>(ms, 1000)) / kDurationMs);
}
// v2's share at 50/50 when its weight is scaled by `f`.
double share(double f) { return f / (1 + f); }

class WarmupTest : public SteeringTest {
   protected:
    json status() { return json::parse(tcpshift_here({"status", "--json"}).out); }
    json v2_status() {
        const json s = status();
        const json* b = backend_of(s, "127.0.0.1:9002");
        return b ? *b : json();
    }
    // How long ago the kernel saw v2 become ready; 0 once it is past its warmup (or never).
    uint64_t ready_for_ms() {
        const json b = v2_status();
        return b.is_object() && b["warmup"].is_object() ? b["warmup"]["ready_for_ms"].get<uint64_t>() : 0;
    }
    // Waits for v2's listener to register and its warmup to show.
    void wait_warming() {
        for (int i = 0; i < 100; ++i) {
            const json b = v2_status();
            if (b.is_object() && b["ready"].get<bool>() && b["warmup"].is_object()) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        FAIL() << "v2 never showed as warming up: " << v2_status().dump();
    }
    // One window of connections, judged against the factor over the time it took.
    void expect_window(const std::string& when) {
        const uint64_t from = ready_for_ms();
        const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), kWindow);
        const uint64_t to = ready_for_ms();
        ASSERT_EQ(t.failures, 0u) << when << ": " << t.str();
        const double got = static_cast<double>(t["two"]) / kWindow;
        const double lo = share(factor(from)), hi = share(factor(to ? to : kDurationMs));
        std::cout << "[ figures ] warmup " << when << ": " << from << "-" << to << " ms after v2 started, v2 took "
                  << got * 100 << "% (the factor gives " << lo * 100 << "-" << hi * 100 << "%)\n";
        EXPECT_GE(got, lo - tolerance(lo)) << when << ", " << from << "-" << to << " ms: " << t.str();
        EXPECT_LE(got, hi + tolerance(hi)) << when << ", " << from << "-" << to << " ms: " << t.str();
    }
};

TEST_F(WarmupTest, ABackendThatStartsRampsUpToItsWeightAndAgainWhenItRestarts) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])", {{"v1", 50, {"127.0.0.1:9001"}}, {"v2", 50, {"127.0.0.1:9002"}}},
                        "  policy:\n    loadBalancer:\n      simple: RANDOM\n      warmup: {duration: 10s}\n"));
    auto in = enter();
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    wait_warming();
    const json first = v2_status();
    EXPECT_NE(first["status"].get<std::string>().find("warming up"), std::string::npos) << first.dump();
    EXPECT_LT(first["warmup"]["weight_percent"].get<double>(), 30) << first.dump();

    // Started: a tenth of its weight at first, half of it at half the duration.
    expect_window("at start");
    while (ready_for_ms() && ready_for_ms() < kDurationMs / 2)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    expect_window("half-way");

    // Past the duration, the weights as written.
    while (ready_for_ms()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(v2_status()["warmup"].is_null()) << v2_status().dump();
    EXPECT_EQ(v2_status()["status"], "yes") << v2_status().dump();
    const Tally after = tally_from_many_sources(endpoint("127.0.0.1:31400"), kConnections);
    ASSERT_EQ(after.failures, 0u) << after.str();
    const SplitVerdict v = chi_square_split({after["one"], after["two"]}, {50, 50});
    EXPECT_GE(v.p_value, kAlpha) << after.str() << "\n" << v.table;

    // Restarted, it ramps up again from the start.
    v2.stop(SIGTERM);
    v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    wait_warming();
    expect_window("after a restart");
}

// verify reads the ramp back from the kernel's live tables: one whose warmup was changed under
// tcpshift's feet is named.
TEST_F(WarmupTest, VerifyComparesTheRampTheKernelHolds) {
    const std::string config =
        traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])", {{"v1", 50, {"127.0.0.1:9001"}}, {"v2", 50, {"127.0.0.1:9002"}}},
                      "  policy:\n    loadBalancer: {warmup: {duration: 30s, aggression: 2}}\n");
    apply(config);
    const CommandResult ok = tcpshift_here({"verify"});
    EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
    const CommandResult explain = run_command({TCPSHIFT_BIN, "explain", "-f", write_temp_file("warmup.yaml", config)});
    EXPECT_NE(explain.out.find("warmup: a backend that starts listening"), std::string::npos) << explain.out << explain.err;
    EXPECT_NE(explain.out.find("max(10%, (t/30 s)^(1/2))"), std::string::npos) << explain.out;

    Fd tables(bpf_obj_get((pin_dir(netns_inode()) + "/tables").c_str()));
    ASSERT_TRUE(tables);
    bool tampered = false;
    uint32_t id = 0;
    for (const uint32_t* prev = nullptr; bpf_map_get_next_key(tables.get(), prev, &id) == 0; prev = &id) {
        auto t = std::make_unique<ts_table>();
        ASSERT_EQ(bpf_map_lookup_elem(tables.get(), &id, t.get()), 0);
        if (!(t->flags & TS_TABLE_WARMUP)) continue;
        t->warmup_ns = 5'000'000'000ull;
        ASSERT_EQ(bpf_map_update_elem(tables.get(), &id, t.get(), BPF_EXIST), 0);
        tampered = true;
    }
    ASSERT_TRUE(tampered) << "no live table has warmup";
    const CommandResult bad = tcpshift_here({"verify"});
    EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
    EXPECT_NE((bad.out + bad.err).find("ramps a new backend up over 5 s; configured: 30 s"), std::string::npos)
        << bad.out << bad.err;
}

// Without warmup a backend that starts takes its whole weight at once: the control for the
// test above, on the same schedule.
TEST_F(WarmupTest, WithoutWarmupABackendThatStartsTakesItsWeightAtOnce) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])", {{"v1", 50, {"127.0.0.1:9001"}}, {"v2", 50, {"127.0.0.1:9002"}}},
                        "  policy:\n    loadBalancer: {simple: RANDOM}\n"));
    auto in = enter();
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    for (int i = 0; i < 100 && !(v2_status().is_object() && v2_status()["ready"].get<bool>()); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), kWindow);
    ASSERT_EQ(t.failures, 0u) << t.str();
    EXPECT_TRUE(v2_status()["warmup"].is_null()) << v2_status().dump();
    // A table with no warmup holds none, as verify reads it back.
    const CommandResult verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    // Its half, far above the tenth (a share of 9%) that the warmup test's first window bounds.
    EXPECT_GT(static_cast<double>(t["two"]) / kWindow, 0.30) << t.str();
}

}  // namespace
}  // namespace tcpshift::testing
