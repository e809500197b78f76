#include "stats.h"

#include <gtest/gtest.h>

namespace tcpshift::testing {
namespace {

TEST(ChiSquare, SurvivalMatchesTabulatedCriticalValues) {
    // Critical values at alpha = 0.001 from any chi-square table.
    EXPECT_NEAR(chi_square_survival(10.828, 1), 0.001, 2e-6);
    EXPECT_NEAR(chi_square_survival(13.816, 2), 0.001, 2e-6);
    EXPECT_NEAR(chi_square_survival(16.266, 3), 0.001, 2e-6);
    EXPECT_NEAR(chi_square_survival(3.841, 1), 0.05, 2e-5);
    EXPECT_DOUBLE_EQ(chi_square_survival(0, 3), 1.0);
}

TEST(ChiSquare, AcceptsAFairSplitAndRejectsAShiftedOne) {
    EXPECT_GT(chi_square_split({402, 1598}, {20, 80}).p_value, kAlpha);
    EXPECT_LT(chi_square_split({500, 1500}, {20, 80}).p_value, kAlpha);
    // A category with expected 0 is left out of the statistic.
    EXPECT_GT(chi_square_split({0, 1000, 1000}, {0, 50, 50}).p_value, kAlpha);
}

TEST(ChiSquare, SampleSizeGivesPowerForFivePoints) {
    // 2000 connections detect a 5-point shift of a 20/80 split, as the e2e tests rely on.
    EXPECT_LE(sample_size_for({20, 80}, 0.05), 2000u);
    EXPECT_LE(sample_size_for({10, 30, 60}, 0.05), 3000u);
}

}  // namespace
}  // namespace tcpshift::testing
