#include "tcpshift/weight_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "tcpshift/bpf_abi.h"

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

void expect_shares_within_a_tenth_of_a_point(const std::vector<double>& weights) {
    const auto table = build_weight_table(backends_with(weights), kSlots, TS_NO_BACKEND);
    ASSERT_EQ(table.size(), kSlots);
    const auto counts = count_slots(table);
    double total = 0;
    for (double w : weights) total += w;
    for (size_t i = 0; i < weights.size(); ++i) {
        const double want = weights[i] / total * 100.0;
        const double got = (counts.count(i) ? counts.at(i) : 0) * 100.0 / kSlots;
        EXPECT_NEAR(got, want, 0.1) << "backend " << i << " of " << weights.size();
        if (weights[i] == 0) {
            EXPECT_EQ(counts.count(i), 0u);
        }
    }
    EXPECT_EQ(counts.count(TS_NO_BACKEND), 0u) << "every slot is filled";
}

TEST(WeightTable, SharesMatchWeightsForChosenVectors) {
    const std::vector<std::vector<double>> cases = {
        {50, 50}, {20, 80}, {10, 30, 60}, {0, 100}, {1, 999999}, {1, 1, 1}, {33, 33, 34},
        {100}, {5, 0, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
    };
    for (const auto& weights : cases) expect_shares_within_a_tenth_of_a_point(weights);
}

TEST(WeightTable, SharesMatchWeightsForManyRandomVectors) {
    std::mt19937 rng(20261125);
    for (int round = 0; round < 300; ++round) {
        const size_t n = 1 + rng() % 256;
        std::vector<double> weights(n);
        for (auto& w : weights) w = rng() % 4 == 0 ? 0 : 1 + rng() % 1000;
        if (std::all_of(weights.begin(), weights.end(), [](double w) { return w == 0; })) weights[0] = 1;
        expect_shares_within_a_tenth_of_a_point(weights);
    }
}

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
