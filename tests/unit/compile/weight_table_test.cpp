#include "compile/weight_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "bpf/abi.h"
#include "test_names.h"

namespace tcpshift {
namespace {

constexpr uint32_t kSlots = TS_TABLE_SLOTS;

std::vector<WeightedBackend> backends_with(const std::vector<double>& weights) {
    std::vector<WeightedBackend> out;
    for (size_t i = 0; i < weights.size(); ++i)
        out.push_back(WeightedBackend{.id = static_cast<uint16_t>(i), .name = "10.0.0." + std::to_string(i) + ":80",
                                      .weight = weights[i]});
    return out;
}

std::map<uint16_t, uint32_t> count_slots(const std::vector<uint16_t>& table) {
    std::map<uint16_t, uint32_t> counts;
    for (uint16_t id : table) ++counts[id];
    return counts;
}

std::string weights_text(const std::vector<double>& weights) {
    std::string s;
    for (double w : weights) s += (s.empty() ? "{" : ", ") + std::to_string(static_cast<long long>(w));
    return s + "}";
}

// Every share within a tenth of a point of its weight, and every slot count within one slot
// of exact (weight / sum * slots): the table takes each backend's quota, and a quota is the
// exact count rounded down or up. A non-zero weight goes without a slot only when its exact
// count is below one slot, which is the case compile_plan refuses.
void expect_table_follows_weights(const std::vector<double>& weights) {
    const auto backends = backends_with(weights);
    const auto table = build_weight_table(backends, kSlots, TS_NO_BACKEND);
    ASSERT_EQ(table.size(), kSlots);
    const auto counts = count_slots(table);
    const auto quota = slot_quotas(backends, kSlots);
    ASSERT_EQ(quota.size(), weights.size());
    double total = 0;
    for (double w : weights) total += w;
    for (size_t i = 0; i < weights.size(); ++i) {
        const double want = weights[i] / total * 100.0;
        const uint32_t slots = counts.count(i) ? counts.at(i) : 0;
        const double got = slots * 100.0 / kSlots;
        EXPECT_NEAR(got, want, 0.1) << "backend " << i << " of " << weights_text(weights);
        EXPECT_EQ(slots, quota[i]) << "the table gives backend " << i << " its quota, " << weights_text(weights);
        const double exact = weights[i] / total * kSlots;
        if (weights[i] == 0) {
            EXPECT_EQ(slots, 0u) << "backend " << i << " has weight 0, " << weights_text(weights);
        } else if (slots == 0) {
            EXPECT_LT(exact, 1.0) << "backend " << i << " lost a share of a slot or more, " << weights_text(weights);
        } else {
            EXPECT_LT(std::fabs(slots - exact), 1.0)
                << "backend " << i << ": " << slots << " slots for an exact " << exact << ", " << weights_text(weights);
        }
    }
    EXPECT_EQ(counts.count(TS_NO_BACKEND), 0u) << "every slot is filled";
}

TEST(WeightTable, SharesMatchWeightsForChosenVectors) {
    const std::vector<std::vector<double>> cases = {
        {50, 50}, {20, 80}, {10, 30, 60}, {0, 100}, {1, 999999}, {1, 1, 1}, {33, 33, 34},
        {100}, {5, 0, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
    };
    for (const auto& weights : cases) expect_table_follows_weights(weights);
}

TEST(WeightTable, SharesMatchWeightsForManyRandomVectors) {
    std::mt19937 rng(20261125);
    for (int round = 0; round < 300; ++round) {
        const size_t n = 1 + rng() % 256;
        std::vector<double> weights(n);
        for (auto& w : weights) w = rng() % 4 == 0 ? 0 : 1 + rng() % 1000;
        if (std::all_of(weights.begin(), weights.end(), [](double w) { return w == 0; })) weights[0] = 1;
        expect_table_follows_weights(weights);
    }
}

// A weight whose exact share is below one slot can lose it in rounding, and beside much larger
// remainders does: it gets no slot, no flow can hash to its backend, and the backend takes no
// connection, as if its weight were 0 (rounding it up to one slot instead would give it
// hundreds of times its weight). The table cannot honour such a weight either way, which is
// why compile_plan refuses it (plan_test.cpp, "a weight below one slot").
struct BelowOneSlotCase {
    const char* desc;
    std::vector<double> weights;  // weights[0] is the one below one slot
};

void PrintTo(const BelowOneSlotCase& c, std::ostream* os) { *os << c.desc; }

class WeightTableBelowOneSlot : public ::testing::TestWithParam<BelowOneSlotCase> {};

TEST_P(WeightTableBelowOneSlot, GetsNoSlotSoItsBackendTakesNoConnection) {
    const auto& c = GetParam();
    const auto backends = backends_with(c.weights);
    double total = 0;
    for (double w : c.weights) total += w;
    ASSERT_GT(c.weights[0], 0);
    ASSERT_LT(c.weights[0] / total * kSlots, 1.0) << "the case must be below one slot";
    const auto quota = slot_quotas(backends, kSlots);
    EXPECT_EQ(quota[0], 0u) << "a weight of " << c.weights[0] << " in " << total;
    EXPECT_EQ(std::accumulate(quota.begin(), quota.end(), 0u), kSlots) << "the others take every slot";
    const auto counts = count_slots(build_weight_table(backends, kSlots, TS_NO_BACKEND));
    EXPECT_EQ(counts.count(0), 0u) << "a slot names the backend of weight " << c.weights[0];
    EXPECT_EQ(counts.count(TS_NO_BACKEND), 0u) << "every slot is filled";
}

INSTANTIATE_TEST_SUITE_P(
    Table, WeightTableBelowOneSlot,
    ::testing::Values(BelowOneSlotCase{.desc = "one in a million", .weights = {1, 999999}},
                      BelowOneSlotCase{.desc = "one in ten thousand beside three", .weights = {1, 3333, 3333, 3334}},
                      BelowOneSlotCase{.desc = "a tenth of a slot", .weights = {1, 40929}}),
    [](const ::testing::TestParamInfo<BelowOneSlotCase>& info) { return test_case_name(info.param.desc); });

TEST(WeightTable, NoWeightLeavesEverySlotEmpty) {
    const auto table = build_weight_table(backends_with({0, 0}), kSlots, TS_NO_BACKEND);
    EXPECT_EQ(count_slots(table).at(TS_NO_BACKEND), kSlots);
}

TEST(WeightTable, QuotasAddUpToTheTable) {
    const auto quota = slot_quotas(backends_with({1, 1, 1}), kSlots);
    EXPECT_EQ(quota[0] + quota[1] + quota[2], kSlots);
    EXPECT_LE(std::max({quota[0], quota[1], quota[2]}) - std::min({quota[0], quota[1], quota[2]}), 1u);
}

// Maglev order: a change moves about as few slots as the change in shares requires, so
// source-IP affinity survives a shift for most clients.
TEST(WeightTable, AWeightChangeMovesFewSlots) {
    const auto before = build_weight_table(backends_with({25, 25, 25, 25}), kSlots, TS_NO_BACKEND);
    const auto after = build_weight_table(backends_with({20, 25, 25, 30}), kSlots, TS_NO_BACKEND);
    uint32_t moved = 0;
    for (uint32_t i = 0; i < kSlots; ++i) moved += before[i] != after[i];
    // The minimum is 5% of the slots; a table filled without regard to the old one moves ~75%.
    EXPECT_LT(moved, kSlots * 0.15) << moved << " slots moved";
}

TEST(WeightTable, RemovingABackendMovesLittleMoreThanItsShare) {
    const auto before = build_weight_table(backends_with({1, 1, 1, 1, 1}), kSlots, TS_NO_BACKEND);
    auto four = backends_with({1, 1, 1, 1, 1});
    four.erase(four.begin() + 2);
    const auto after = build_weight_table(four, kSlots, TS_NO_BACKEND);
    uint32_t moved_elsewhere = 0;
    for (uint32_t i = 0; i < kSlots; ++i) moved_elsewhere += before[i] != 2 && before[i] != after[i];
    EXPECT_LT(moved_elsewhere, kSlots * 0.10) << moved_elsewhere << " slots of surviving backends moved";
}

}  // namespace
}  // namespace tcpshift

namespace tcpshift {
namespace {

// How often each id appears in `turns` consecutive turns starting at `start`, the cycle repeating.
std::map<uint16_t, size_t> turns_taken(const std::vector<uint16_t>& cycle, size_t start, size_t turns) {
    std::map<uint16_t, size_t> count;
    for (size_t t = start; t < start + turns; ++t) ++count[cycle[t % cycle.size()]];
    return count;
}

TEST(RoundRobin, TwentyEightyIsExactOverEveryFiveTurns) {
    const auto cycle = build_round_robin({{.weight = 20, .ids = {1}}, {.weight = 80, .ids = {2}}}, 4093);
    ASSERT_EQ(cycle.size(), 5u);
    for (size_t start = 0; start < 5; ++start) {
        const auto count = turns_taken(cycle, start, 20);
        EXPECT_EQ(count.at(1), 4u);
        EXPECT_EQ(count.at(2), 16u);
    }
    // Smooth: v1's turn is not at an end of the cycle next to the next cycle's.
    EXPECT_NE(cycle.front(), 1);
}

TEST(RoundRobin, BackendsOfASubsetTakeItsTurnsInRotation) {
    const auto cycle = build_round_robin(
        {{.weight = 10, .ids = {1}}, {.weight = 30, .ids = {2, 3}}, {.weight = 60, .ids = {4}}}, 4093);
    ASSERT_EQ(cycle.size(), 20u) << "the 10-turn cycle twice, so that 2 and 3 take 3 turns each";
    const auto count = turns_taken(cycle, 7, 20);
    EXPECT_EQ(count.at(1), 2u);
    EXPECT_EQ(count.at(2), 3u);
    EXPECT_EQ(count.at(3), 3u);
    EXPECT_EQ(count.at(4), 12u);
}

TEST(RoundRobin, WeightsWithoutACommonFactorAreRoundedToTheLimit) {
    const auto cycle = build_round_robin({{.weight = 4001, .ids = {1}}, {.weight = 3999, .ids = {2}}}, 4093);
    ASSERT_LE(cycle.size(), 4093u);
    const auto count = turns_taken(cycle, 0, cycle.size());
    EXPECT_NEAR(static_cast<double>(count.at(1)) / cycle.size(), 4001.0 / 8000, 1.0 / 4093);
    EXPECT_TRUE(build_round_robin({{.weight = 0, .ids = {1}}}, 4093).empty()) << "no weight: no cycle";
    const auto zero = build_round_robin({{.weight = 0, .ids = {1}}, {.weight = 5, .ids = {2}}}, 4093);
    EXPECT_EQ(zero, (std::vector<uint16_t>{2}));
}

}  // namespace
}  // namespace tcpshift
