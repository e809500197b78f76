#include "rollout/spec.h"

#include <gtest/gtest.h>

namespace tcpshift {
namespace {

TEST(RolloutSpec, StepsRiseFromOneToAHundred) {
    struct Case {
        const char* desc;
        const char* text;
        std::vector<uint32_t> steps;  // empty: refused
    } cases[] = {
        {.desc = "the usual", .text = "5,10,25,50,100", .steps = {5, 10, 25, 50, 100}},
        {.desc = "one step", .text = "100", .steps = {100}},
        {.desc = "ends short of 100", .text = "10,20", .steps = {10, 20}},
        {.desc = "falls", .text = "5,3", .steps = {}},
        {.desc = "repeats", .text = "5,5", .steps = {}},
        {.desc = "zero", .text = "0,10", .steps = {}},
        {.desc = "over 100", .text = "50,101", .steps = {}},
        {.desc = "a word", .text = "5,ten", .steps = {}},
        {.desc = "empty", .text = "", .steps = {}},
        {.desc = "a trailing comma", .text = "5,", .steps = {5}},
        {.desc = "with their signs", .text = "10%,50%,100%", .steps = {10, 50, 100}},
    };
    for (const auto& c : cases) {
        auto steps = parse_steps(c.text);
        if (c.steps.empty()) {
            ASSERT_FALSE(steps) << c.desc;
            EXPECT_NE(steps.error().message.find("--steps"), std::string::npos) << steps.error().message;
        } else {
            ASSERT_TRUE(steps) << c.desc << ": " << steps.error().message;
            EXPECT_EQ(*steps, c.steps) << c.desc;
        }
    }
}

TEST(RolloutSpec, AServiceNameCannotLeaveTheRecordsDirectory) {
    EXPECT_TRUE(check_service_name("tcp-echo"));
    EXPECT_TRUE(check_service_name("reviews.default_1"));
    for (const char* bad : {"", ".", "..", "../x", "a/b", "a b", "x\n"}) EXPECT_FALSE(check_service_name(bad)) << bad;
}

TEST(RolloutSpec, PercentagesNeedTheirSign) {
    EXPECT_DOUBLE_EQ(*parse_percent("--max-failure-rate", "1%", 1), 0.01);
    EXPECT_DOUBLE_EQ(*parse_percent("--max-failure-rate", "0.5%", 1), 0.005);
    EXPECT_DOUBLE_EQ(*parse_percent("--max-rtt-increase", "250%", 100), 2.5);
    EXPECT_FALSE(parse_percent("--max-failure-rate", "0.01", 1));  // a fraction, ambiguous
    EXPECT_FALSE(parse_percent("--max-failure-rate", "150%", 1));
    EXPECT_FALSE(parse_percent("--max-failure-rate", "-1%", 1));
    EXPECT_FALSE(parse_percent("--max-failure-rate", "nan%", 1));
}

TEST(RolloutSpec, TheCanaryTakesItsShareAndTheOthersShareTheRestByTheirStartingWeights) {
    struct Case {
        const char* desc;
        std::map<std::string, uint32_t> start;
        uint32_t percent;
        std::map<std::string, uint32_t> want;
    } cases[] = {
        {.desc = "two subsets", .start = {{"v1", 100}, {"v2", 0}}, .percent = 10, .want = {{"v1", 90}, {"v2", 10}}},
        {.desc = "the end", .start = {{"v1", 100}, {"v2", 0}}, .percent = 100, .want = {{"v1", 0}, {"v2", 100}}},
        {.desc = "the canary's starting weight is not the baseline's",
         .start = {{"v1", 80}, {"v2", 20}}, .percent = 50, .want = {{"v1", 50}, {"v2", 50}}},
        {.desc = "three subsets keep their proportion",
         .start = {{"v1", 20}, {"v2", 0}, {"v3", 60}}, .percent = 20, .want = {{"v1", 20}, {"v2", 20}, {"v3", 60}}},
        {.desc = "remainders go to the largest fractions",
         .start = {{"a", 1}, {"b", 1}, {"c", 1}, {"v2", 0}}, .percent = 0 + 1,
         .want = {{"a", 33}, {"b", 33}, {"c", 33}, {"v2", 1}}},
        {.desc = "a baseline of zero weights is shared equally",
         .start = {{"v1", 0}, {"v2", 100}, {"v3", 0}}, .percent = 50, .want = {{"v1", 25}, {"v2", 50}, {"v3", 25}}},
    };
    for (const auto& c : cases) {
        const auto got = step_weights(c.start, "v2", c.percent);
        EXPECT_EQ(got, c.want) << c.desc;
        uint32_t sum = 0;
        for (const auto& [n, w] : got) sum += w;
        EXPECT_EQ(sum, 100u) << c.desc;
    }
}

}  // namespace
}  // namespace tcpshift
