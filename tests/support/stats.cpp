#include "stats.h"

#include <cmath>
#include <cstdio>
#include <numeric>

namespace tcpshift::testing {

namespace {

// Regularized lower incomplete gamma P(a, x) by its series (x < a + 1).
double gamma_p_series(double a, double x) {
    double sum = 1.0 / a, term = sum;
    for (int n = 1; n < 1000; ++n) {
        term *= x / (a + n);
        sum += term;
        if (std::fabs(term) < std::fabs(sum) * 1e-15) break;
    }
    return sum * std::exp(-x + a * std::log(x) - std::lgamma(a));
}

// Regularized upper incomplete gamma Q(a, x) by Lentz's continued fraction (x >= a + 1).
double gamma_q_fraction(double a, double x) {
    const double tiny = 1e-300;
    double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
    for (int i = 1; i < 1000; ++i) {
        const double an = -i * (i - a);
        b += 2.0;
        d = an * d + b;
        if (std::fabs(d) < tiny) d = tiny;
        c = b + an / c;
        if (std::fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        const double delta = d * c;
        h *= delta;
        if (std::fabs(delta - 1.0) < 1e-15) break;
    }
    return std::exp(-x + a * std::log(x) - std::lgamma(a)) * h;
}

}  // namespace

double chi_square_survival(double x, int dof) {
    if (x <= 0) return 1.0;
    const double a = dof / 2.0, half = x / 2.0;
    return half < a + 1 ? 1.0 - gamma_p_series(a, half) : gamma_q_fraction(a, half);
}

SplitVerdict chi_square_split(const std::vector<uint64_t>& observed, const std::vector<double>& expected) {
    SplitVerdict v;
    const double total_weight = std::accumulate(expected.begin(), expected.end(), 0.0);
    uint64_t n = 0;
    for (size_t i = 0; i < observed.size(); ++i)
        if (expected[i] > 0) n += observed[i];
    int categories = 0;
    char line[160];
    for (size_t i = 0; i < observed.size(); ++i) {
        const double e = n * expected[i] / total_weight;
        std::snprintf(line, sizeof(line), "  [%zu] observed %llu expected %.1f\n", i,
                      static_cast<unsigned long long>(observed[i]), e);
        v.table += line;
        if (expected[i] <= 0) continue;
        ++categories;
        v.chi_square += (observed[i] - e) * (observed[i] - e) / e;
    }
    v.p_value = categories > 1 ? chi_square_survival(v.chi_square, categories - 1) : 1.0;
    std::snprintf(line, sizeof(line), "  chi-square %.3f, p = %.6f, alpha %.3f\n", v.chi_square, v.p_value, kAlpha);
    v.table += line;
    return v;
}

uint64_t sample_size_for(const std::vector<double>& expected, double delta) {
    const double total = std::accumulate(expected.begin(), expected.end(), 0.0);
    double smallest = 1.0;
    int categories = 0;
    for (double e : expected)
        if (e > 0) {
            smallest = std::min(smallest, e / total);
            ++categories;
        }
    // Find the critical value, then the n at which a shift of delta from the smallest category
    // to another reaches it: chi2 ~ n * delta^2 * (1/p_small + 1/p_other) >= critical.
    double critical = 0;
    for (double x = 0; x < 200; x += 0.01)
        if (chi_square_survival(x, std::max(categories - 1, 1)) < kAlpha) {
            critical = x;
            break;
        }
    return static_cast<uint64_t>(std::ceil(critical * smallest / (delta * delta)));
}

}  // namespace tcpshift::testing
