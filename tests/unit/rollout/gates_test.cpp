#include "rollout/gates.h"

#include <gtest/gtest.h>

namespace tcpshift {
namespace {

const RolloutSpec kSpec{.service = "tcp-echo", .canary = "v2", .steps = {10, 100}, .max_failure_rate = 0.01,
                        .max_rtt_increase = 0.5, .rtt_slack_us = 1000, .min_connections = 100};

TEST(RolloutGates, AStepIsJudgedOnlyOnEnoughCanaryConnections) {
    using Kind = Verdict::Kind;
    struct Case {
        const char* desc;
        SubsetFigures canary, baseline;
        Kind want;
        const char* gate;
    } cases[] = {
        {.desc = "thin data waits, however bad",
         .canary = {.connections = 99, .failures = 99, .rtt_count = 99, .rtt_sum_us = 99'000'000},
         .baseline = {.connections = 1000, .rtt_count = 1000, .rtt_sum_us = 40'000},
         .want = Kind::kWait, .gate = "connections"},
        {.desc = "1% of failures passes", .canary = {.connections = 100, .failures = 1, .rtt_count = 100, .rtt_sum_us = 4000},
         .baseline = {.connections = 1000, .rtt_count = 1000, .rtt_sum_us = 40'000}, .want = Kind::kPass, .gate = ""},
        {.desc = "2% fails", .canary = {.connections = 100, .failures = 2, .rtt_count = 100, .rtt_sum_us = 4000},
         .baseline = {.connections = 1000, .rtt_count = 1000, .rtt_sum_us = 40'000}, .want = Kind::kFail,
         .gate = "failure-rate"},
        {.desc = "no RTT of the canary yet: long-lived connections still open",
         .canary = {.connections = 100}, .baseline = {.connections = 1000, .rtt_count = 1000, .rtt_sum_us = 40'000},
         .want = Kind::kWait, .gate = "rtt"},
        {.desc = "double of a loopback RTT is within the slack",
         .canary = {.connections = 100, .rtt_count = 100, .rtt_sum_us = 8000},
         .baseline = {.connections = 1000, .rtt_count = 1000, .rtt_sum_us = 40'000}, .want = Kind::kPass, .gate = ""},
        {.desc = "5 ms over 40 us fails",
         .canary = {.connections = 100, .rtt_count = 100, .rtt_sum_us = 500'000},
         .baseline = {.connections = 1000, .rtt_count = 1000, .rtt_sum_us = 40'000}, .want = Kind::kFail, .gate = "rtt"},
        {.desc = "40% over 10 ms passes",
         .canary = {.connections = 100, .rtt_count = 100, .rtt_sum_us = 1'400'000},
         .baseline = {.connections = 100, .rtt_count = 100, .rtt_sum_us = 1'000'000}, .want = Kind::kPass, .gate = ""},
        {.desc = "a canary that answers nothing, where the baseline answers",
         .canary = {.connections = 100, .rtt_count = 100, .rtt_sum_us = 4000, .closed = 100, .unanswered = 30},
         .baseline = {.connections = 1000, .rtt_count = 1000, .rtt_sum_us = 40'000, .closed = 1000},
         .want = Kind::kFail, .gate = "unanswered"},
        {.desc = "an upload: neither answers",
         .canary = {.connections = 100, .rtt_count = 100, .rtt_sum_us = 4000, .closed = 100, .unanswered = 100},
         .baseline = {.connections = 1000, .rtt_count = 1000, .rtt_sum_us = 40'000, .closed = 1000, .unanswered = 1000},
         .want = Kind::kPass, .gate = ""},
        {.desc = "60% over 10 ms fails",
         .canary = {.connections = 100, .rtt_count = 100, .rtt_sum_us = 1'600'000},
         .baseline = {.connections = 100, .rtt_count = 100, .rtt_sum_us = 1'000'000}, .want = Kind::kFail, .gate = "rtt"},
    };
    for (const auto& c : cases) {
        const Verdict v = judge_step(kSpec, c.canary, c.baseline);
        EXPECT_EQ(v.kind, c.want) << c.desc << ": " << v.reason;
        EXPECT_EQ(v.gate, c.gate) << c.desc;
        EXPECT_FALSE(v.reason.empty()) << c.desc;
    }
}

TEST(RolloutGates, FiguresAreDifferencesOfReadingsAndACounterThatWentBackCountsFromZero) {
    const SubsetFigures before{.connections = 10, .failures = 2, .rtt_count = 9, .rtt_sum_us = 900};
    const SubsetFigures after{.connections = 30, .failures = 3, .rtt_count = 29, .rtt_sum_us = 2900};
    const SubsetFigures step = after - before;
    EXPECT_EQ(step.connections, 20u);
    EXPECT_EQ(step.failures, 1u);
    EXPECT_EQ(step.rtt_count, 20u);
    EXPECT_DOUBLE_EQ(step.mean_rtt_us(), 100);
    const SubsetFigures recreated{.connections = 4};
    EXPECT_EQ((recreated - before).connections, 4u);
}

TEST(RolloutGates, EachSubsetSumsItsBackendsAndTheBaselineIsEveryOtherSubset) {
    PlanService svc{.name = "tcp-echo", .id = 1};
    svc.subsets = {{.name = "v1", .backends = {{.id = 1}, {.id = 2}}}, {.name = "v2", .backends = {{.id = 3}}},
                   {.name = "v3", .backends = {{.id = 4}}}};
    StatsFacts facts;
    for (uint32_t id = 1; id <= 4; ++id) {
        facts.routes[{1, id}].opened = 100 * id;
        facts.failures[id] = {.remote = id == 4, .before_data = id};
        facts.sli[id].reset_after_data = 10;
        facts.sli[id].rtt_us.count = id;
        facts.sli[id].rtt_us.sum = 50 * id;
    }
    facts.failures[1].listen_overflows = 1000;  // SYNs: not failed connections
    const auto subsets = subset_figures(svc, facts);
    EXPECT_EQ(subsets.at("v1").connections, 300u);
    EXPECT_EQ(subsets.at("v1").failures, 1u + 2 + 20);
    EXPECT_EQ(subsets.at("v2").connections, 300u);
    EXPECT_EQ(subsets.at("v3").connections, 400u + 4);  // a connect-time backend's failed handshakes
    EXPECT_EQ(subsets.at("v1").rtt_sum_us, 150u);
    const SubsetFigures baseline = baseline_of(subsets, "v2");
    EXPECT_EQ(baseline.connections, 300u + 404);
    EXPECT_EQ(baseline.failures, 23u + 14);
}

}  // namespace
}  // namespace tcpshift
