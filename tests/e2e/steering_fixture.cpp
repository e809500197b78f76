#include "steering_fixture.h"

#include <gtest/gtest.h>

#include "stats.h"

namespace tcpshift::testing {

std::string traffic_shift(const std::string& name, const std::string& listen, const std::vector<Subset>& subsets,
                          const std::string& extra) {
    std::string y = "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata:\n  name: " + name +
                    "\nspec:\n  listen: " + listen + "\n" + extra + "  subsets:\n";
    for (const auto& s : subsets) {
        y += "  - name: " + s.name + "\n    weight: " + std::to_string(s.weight) + "\n    backends: [";
        for (size_t i = 0; i < s.backends.size(); ++i) y += (i ? ", \"" : "\"") + s.backends[i] + "\"";
        y += "]\n";
    }
    return y;
}

std::string tcp_echo(int v1, int v2) {
    return traffic_shift("tcp-echo", R"(["0.0.0.0:31400"])", {{"v1", v1, {"127.0.0.1:9001"}}, {"v2", v2, {"127.0.0.1:9002"}}});
}

void expect_split(const Endpoint& target, const std::vector<std::string>& prefixes, const std::vector<double>& weights,
                  size_t n) {
    const Tally t = tally(target, n);
    ASSERT_EQ(t.failures, 0u) << t.str();
    std::vector<uint64_t> observed;
    uint64_t counted = 0;
    for (const auto& p : prefixes) {
        observed.push_back(t[p]);
        counted += t[p];
    }
    EXPECT_EQ(counted, n) << "replies from outside the service: " << t.str();
    const SplitVerdict v = chi_square_split(observed, weights);
    EXPECT_GE(v.p_value, kAlpha) << "split rejected: " << t.str() << "\n" << v.table;
    for (size_t i = 0; i < weights.size(); ++i) {
        if (weights[i] == 0) {
            EXPECT_EQ(observed[i], 0u) << prefixes[i] << " has weight 0";
        }
    }
}

}  // namespace tcpshift::testing
