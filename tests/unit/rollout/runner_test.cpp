#include "rollout/runner.h"

#include <gtest/gtest.h>

#include "rollout/plot.h"

namespace tcpshift {
namespace {

// A service under steady load: each tick brings `per_tick` connections, split by the weights
// installed; the canary fails `canary_failure` of its own.
struct World {
    std::map<std::string, uint32_t> weights{{"v1", 100}, {"v2", 0}};
    std::map<std::string, SubsetFigures> counters;
    uint64_t now = 1'000'000;       // the steady clock
    int64_t wall_offset = 1'000'000;  // the wall clock is now + this
    std::map<uint64_t, int64_t> wall_jumps;  // at this time, the wall clock jumps by so much
    int failing_installs = 0;                // the next installs that fail
    uint64_t per_tick = 200;
    double canary_failure = 0;
    double canary_rtt_us = 40, baseline_rtt_us = 40;
    std::vector<std::map<std::string, uint32_t>> installed;  // every set_weights, in order
    std::map<uint64_t, std::string> requests;                // at this time, a control request
    std::optional<std::map<std::string, uint32_t>> changed_by_someone;  // after the first step

    void tick(uint64_t ms) {
        now += ms;
        for (auto it = wall_jumps.begin(); it != wall_jumps.end() && it->first <= now;) {
            wall_offset += it->second;
            it = wall_jumps.erase(it);
        }
        uint64_t sum = 0;
        for (const auto& [n, w] : weights) sum += w;
        for (const auto& [name, w] : weights) {
            const uint64_t n = sum ? per_tick * w / sum : 0;
            SubsetFigures& f = counters[name];
            f.connections += n;
            f.failures += static_cast<uint64_t>(name == "v2" ? n * canary_failure : 0);
            f.rtt_count += n;
            f.rtt_sum_us += static_cast<uint64_t>(n * (name == "v2" ? canary_rtt_us : baseline_rtt_us));
        }
    }

    RolloutIo io() {
        return {.read = [this]() -> Result<Reading> { return Reading{.figures = counters, .weights = weights}; },
                .set_weights =
                    [this](const std::map<std::string, uint32_t>& w) -> Result<void> {
                        if (failing_installs > 0) {
                            --failing_installs;
                            return fail(system_error("flock: EWOULDBLOCK"));
                        }
                        weights = w;
                        installed.push_back(w);
                        if (changed_by_someone && installed.size() == 1) weights = *changed_by_someone;
                        return {};
                    },
                .now_unix_ms = [this] { return static_cast<uint64_t>(static_cast<int64_t>(now) + wall_offset); },
                .steady_ms = [this] { return now; },
                .sleep_ms = [this](uint64_t ms) { tick(ms); },
                .control = [this]() -> std::optional<std::string> {
                    for (auto it = requests.begin(); it != requests.end(); ++it)
                        if (it->first <= now) {
                            std::string r = it->second;
                            requests.erase(it);
                            return r;
                        }
                    return std::nullopt;
                },
                .changed = [](const RolloutRecord&, const RolloutNote*) {},
                .tick_ms = 1000};
    }
};

RolloutRecord fresh(World& world, std::vector<uint32_t> steps = {10, 50, 100}) {
    return {.spec = {.service = "tcp-echo", .canary = "v2", .steps = std::move(steps), .interval_ms = 10'000,
                     .min_connections = 100},
            .start_weights = world.weights,
            .origin = world.counters,
            .started_unix_ms = world.now + world.wall_offset};
}

std::vector<uint32_t> canary_shares(const World& world) {
    std::vector<uint32_t> out;
    for (const auto& w : world.installed) out.push_back(w.at("v2"));
    return out;
}

size_t count_notes(const RolloutRecord& r, const std::string& kind) {
    size_t n = 0;
    for (const auto& note : r.notes) n += note.kind == kind;
    return n;
}

TEST(RolloutRunner, AHealthyCanaryIsPromotedStepByStep) {
    World world;
    RolloutRecord record = fresh(world);
    ASSERT_TRUE(run_rollout(record, world.io()));
    EXPECT_EQ(record.phase, RolloutPhase::kPromoted) << record.outcome;
    EXPECT_EQ(canary_shares(world), (std::vector<uint32_t>{10, 50, 100}));
    EXPECT_EQ(count_notes(record, "pass"), 3u);
    EXPECT_EQ(world.weights.at("v2"), 100u);
    // each step ran its interval: 3 steps of 10 s
    EXPECT_GE(world.now + world.wall_offset - record.started_unix_ms, 30'000u);
}

TEST(RolloutRunner, AFailingGatePutsTheStartingWeightsBackAtTheFirstJudgement) {
    struct Case {
        const char* desc;
        double failure, rtt_us;
        const char* gate;
    } cases[] = {
        {.desc = "5% of resets", .failure = 0.05, .rtt_us = 40, .gate = "failure-rate"},
        {.desc = "5 ms more RTT", .failure = 0, .rtt_us = 5040, .gate = "rtt"},
    };
    for (const auto& c : cases) {
        World world{.canary_failure = c.failure, .canary_rtt_us = c.rtt_us};
        RolloutRecord record = fresh(world);
        ASSERT_TRUE(run_rollout(record, world.io()));
        EXPECT_EQ(record.phase, RolloutPhase::kAborted) << c.desc;
        EXPECT_EQ(record.failed_gate, c.gate) << c.desc;
        EXPECT_EQ(canary_shares(world), (std::vector<uint32_t>{10, 0})) << c.desc;
        EXPECT_EQ(world.weights, record.start_weights) << c.desc;
        // judged once the 10 s interval was over, within a tick
        EXPECT_LE(world.now + world.wall_offset - record.started_unix_ms, 11'000u) << c.desc;
        EXPECT_NE(record.outcome.find("step 1/3"), std::string::npos) << record.outcome;
    }
}

TEST(RolloutRunner, ThinDataWaitsAndIsNeverPassed) {
    // 20 connections a tick: at 10% the canary has 2 a tick, 100 after 50 s.
    World world{.per_tick = 20};
    RolloutRecord record = fresh(world, {10});
    ASSERT_TRUE(run_rollout(record, world.io()));
    EXPECT_EQ(record.phase, RolloutPhase::kPromoted);
    EXPECT_GE(world.now + world.wall_offset - record.started_unix_ms, 50'000u);
    EXPECT_GE(world.counters["v2"].connections, 100u);
}

TEST(RolloutRunner, AStepThatWaitsPastItsMaxWaitIsAborted) {
    World world{.per_tick = 20};  // 2 canary connections a tick at 10%
    RolloutRecord record = fresh(world, {10});
    record.spec.min_connections = 1000;
    record.spec.max_wait_ms = 20'000;
    ASSERT_TRUE(run_rollout(record, world.io()));
    EXPECT_EQ(record.phase, RolloutPhase::kAborted);
    EXPECT_EQ(record.failed_gate, "thin-data");
    EXPECT_GE(world.now + world.wall_offset - record.started_unix_ms, 30'000u);
    EXPECT_LE(world.now + world.wall_offset - record.started_unix_ms, 32'000u);
    EXPECT_EQ(world.weights, record.start_weights);
}

TEST(RolloutRunner, APausedStepIsNotJudgedAndIsJudgedAgainFromItsResume) {
    World world;
    world.requests = {{world.now + 3000, "pause"}, {world.now + 40'000, "resume"}};
    RolloutRecord record = fresh(world, {10});
    ASSERT_TRUE(run_rollout(record, world.io()));
    EXPECT_EQ(record.phase, RolloutPhase::kPromoted);
    EXPECT_EQ(count_notes(record, "pause"), 1u);
    EXPECT_EQ(count_notes(record, "resume"), 1u);
    EXPECT_GE(world.now + world.wall_offset - record.started_unix_ms, 50'000u);  // resumed at 40 s, then a whole interval
}

TEST(RolloutRunner, AnAbortRequestPutsTheStartingWeightsBack) {
    World world;
    world.requests = {{world.now + 15'000, "abort"}};
    RolloutRecord record = fresh(world);
    ASSERT_TRUE(run_rollout(record, world.io()));
    EXPECT_EQ(record.phase, RolloutPhase::kAborted);
    EXPECT_EQ(record.failed_gate, "");
    EXPECT_EQ(canary_shares(world), (std::vector<uint32_t>{10, 50, 0}));
}

TEST(RolloutRunner, ATakenOverRolloutGoesOnFromItsStepAndNeverSkipsOne) {
    World world;
    RolloutRecord record = fresh(world, {10, 50, 100});
    record.step = 1;
    record.step_applied = true;  // its runner died during the 50% step
    world.weights = {{"v1", 50}, {"v2", 50}};
    ASSERT_TRUE(run_rollout(record, world.io()));
    EXPECT_EQ(record.phase, RolloutPhase::kPromoted);
    EXPECT_EQ(canary_shares(world), (std::vector<uint32_t>{50, 100}));
    EXPECT_EQ(count_notes(record, "takeover"), 1u);
    EXPECT_GE(world.now + world.wall_offset - record.started_unix_ms, 20'000u);  // the 50% step ran whole again
}

TEST(RolloutRunner, WeightsChangedUnderTheRolloutStopItAndAreLeftAlone) {
    World world;
    world.changed_by_someone = std::map<std::string, uint32_t>{{"v1", 70}, {"v2", 30}};
    RolloutRecord record = fresh(world);
    ASSERT_TRUE(run_rollout(record, world.io()));
    EXPECT_EQ(record.phase, RolloutPhase::kStopped);
    EXPECT_EQ(world.installed.size(), 1u);
    EXPECT_EQ(world.weights.at("v2"), 30u);
}

TEST(RolloutRunner, AKernelThatCannotBeReadHoldsTheStep) {
    World world;
    RolloutRecord record = fresh(world);
    RolloutIo io = world.io();
    int reads = 0;
    io.read = [&]() -> Result<Reading> {
        if (++reads > 3) return fail(system_error("read the maps"));
        return Reading{.figures = world.counters, .weights = world.weights};
    };
    EXPECT_FALSE(run_rollout(record, io));
    EXPECT_EQ(record.phase, RolloutPhase::kRunning);
    EXPECT_EQ(canary_shares(world), (std::vector<uint32_t>{10}));
}

TEST(RolloutRunner, AStepLastsItsIntervalWhateverTheWallClockDoes) {
    for (int64_t jump : {-600'000, +600'000}) {
        World world;
        const uint64_t began = world.now;
        world.wall_jumps = {{world.now + 2000, jump}};
        RolloutRecord record = fresh(world, {10});
        ASSERT_TRUE(run_rollout(record, world.io()));
        EXPECT_EQ(record.phase, RolloutPhase::kPromoted);
        EXPECT_GE(world.now - began, 10'000u) << "a jump of " << jump << " ms passed the step early";
    }
}

TEST(RolloutRunner, AFailedRestoreIsTriedAgainAndATakeoverOnlyFinishesIt) {
    World world{.canary_failure = 0.05};
    world.failing_installs = 0;
    RolloutRecord record = fresh(world);
    RolloutIo io = world.io();
    io.restore_for_ms = 3000;
    // The first step installs; then every install fails for longer than restore_for_ms.
    auto set = io.set_weights;
    int installs = 0;
    io.set_weights = [&](const std::map<std::string, uint32_t>& w) -> Result<void> {
        if (++installs > 1 && installs < 6) return fail(system_error("flock: EWOULDBLOCK"));
        return set(w);
    };
    EXPECT_FALSE(run_rollout(record, io));
    EXPECT_TRUE(record.aborting);
    EXPECT_EQ(record.failed_gate, "failure-rate");
    EXPECT_EQ(world.weights.at("v2"), 10u) << "not restored yet";
    // A runner that takes the record over puts the start back, and runs no step.
    ASSERT_TRUE(run_rollout(record, io));
    EXPECT_EQ(record.phase, RolloutPhase::kAborted);
    EXPECT_FALSE(record.aborting);
    EXPECT_EQ(world.weights, record.start_weights);
    EXPECT_EQ(canary_shares(world), (std::vector<uint32_t>{10, 0}));
}

TEST(RolloutRunner, ATakeoverStopsWhenTheWeightsWereChangedWhileItWasHeld) {
    World world;
    RolloutRecord record = fresh(world, {10, 50, 100});
    record.step = 1;
    record.step_applied = true;
    world.weights = {{"v1", 70}, {"v2", 30}};  // `set` while no runner ran
    ASSERT_TRUE(run_rollout(record, world.io()));
    EXPECT_EQ(record.phase, RolloutPhase::kStopped);
    EXPECT_TRUE(world.installed.empty());
    EXPECT_EQ(world.weights.at("v2"), 30u);
}

TEST(RolloutRecord, ARecordReadsBackAsItWasWrittenAndItsPlotMarksTheAbort) {
    World world{.canary_failure = 0.05};
    RolloutRecord record = fresh(world);
    ASSERT_TRUE(run_rollout(record, world.io()));
    auto back = record_from_json(record_json(record));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(record_json(*back), record_json(record));
    const std::string svg = rollout_svg(record);
    EXPECT_NE(svg.find(">abort</text>"), std::string::npos);
    EXPECT_NE(svg.find("v2 (canary)"), std::string::npos);
    auto bad = record_json(record);
    bad["step"] = 7;
    EXPECT_FALSE(record_from_json(bad));
}

}  // namespace
}  // namespace tcpshift
