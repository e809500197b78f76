// End-to-end steering: real tcp-echo backends, real clients, in a network namespace per test.
// Splits are judged by a chi-square test at alpha = 0.001 over enough connections.
#include <gtest/gtest.h>

#include "client.h"
#include "netns_fixture.h"
#include "stats.h"

namespace tcpshift::testing {
namespace {

class SteeringTest : public NetnsTest {};

std::string two_subsets(int v1, int v2, const std::string& listen = R"(["0.0.0.0:31400", "[::]:31400"])") {
    return R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata:
  name: tcp-echo
spec:
  listen: )" + listen + R"(
  subsets:
  - name: v1
    weight: )" + std::to_string(v1) + R"(
    backends: ["127.0.0.1:9001"]
  - name: v2
    weight: )" + std::to_string(v2) + R"(
    backends: ["127.0.0.1:9002"]
)";
}

// Sends n connections and judges the one/two split against the weights.
void expect_split(const Endpoint& target, size_t n, double w1, double w2) {
    const Tally t = tally(target, n);
    ASSERT_EQ(t.failures, 0u) << t.str();
    const SplitVerdict v = chi_square_split({t["one"], t["two"]}, {w1, w2});
    EXPECT_GE(v.p_value, kAlpha) << "split " << w1 << "/" << w2 << " rejected:\n" << v.table;
    if (w1 == 0) {
        EXPECT_EQ(t["one"], 0u);
    }
    if (w2 == 0) {
        EXPECT_EQ(t["two"], 0u);
    }
}

TEST_F(SteeringTest, BackendsFirstThenApplyFiftyFiftyThenTwentyEighty) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(two_subsets(50, 50));
    {
        auto in = enter();
        expect_split(endpoint("127.0.0.1:31400"), 2000, 50, 50);
    }
    const auto r = tcpshift_here({"set", "tcp-echo", "v1=20", "v2=80"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto in = enter();
    expect_split(endpoint("127.0.0.1:31400"), 2000, 20, 80);
}

}  // namespace
}  // namespace tcpshift::testing
