// Statistical judgement of a split: Pearson's chi-square goodness-of-fit test.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tcpshift::testing {

// The significance level every split test uses (DESIGN.md).
inline constexpr double kAlpha = 0.001;

// Upper tail of the chi-square distribution with `dof` degrees of freedom: P(X >= x).
double chi_square_survival(double x, int dof);

struct SplitVerdict {
    double chi_square = 0;
    double p_value = 1;
    std::string table;  // observed against expected, for the failure message
};

// Tests observed counts against expected fractions (which need not be normalised). Categories
// with an expected fraction of 0 are excluded from the statistic; the caller asserts they
// received nothing.
SplitVerdict chi_square_split(const std::vector<uint64_t>& observed, const std::vector<double>& expected);

// Smallest sample size for which a deviation of `delta` (absolute, in the smallest category's
// share) is detected at kAlpha with the given fractions: a guard that a test's sample has power.
uint64_t sample_size_for(const std::vector<double>& expected, double delta);

}  // namespace tcpshift::testing
