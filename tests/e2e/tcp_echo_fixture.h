// The tcp-echo workloads of examples/istio and examples/gateway-api in a test's namespace,
// and the checks both the Istio and the Gateway API tests make of how they are routed.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "client.h"
#include "netns_fixture.h"
#include "stats.h"

namespace tcpshift::testing {

inline constexpr size_t kConnections = 2000;

inline std::string example(const std::string& relative) {
    return std::string(TCPSHIFT_SOURCE_DIR) + "/examples/" + relative;
}

class TcpEchoTest : public NetnsTest {
   protected:
    // The workloads of the examples: v1 at 127.0.0.2:9000 answers "one", v2 at
    // 127.0.0.3:9000 answers "two".
    void start_workloads() {
        v1_ = start_echo(netns(), "127.0.0.2:9000", "one");
        v2_ = start_echo(netns(), "127.0.0.3:9000", "two");
        ASSERT_FALSE(v1_.first_line().empty());
        ASSERT_FALSE(v2_.first_line().empty());
    }

    void apply_file(const std::string& path) {
        const auto r = tcpshift_here({"apply", "-f", path});
        ASSERT_EQ(r.exit_code, 0) << path << ": " << r.err;
    }

    void expect_split(const std::string& target, double w1, double w2) {
        auto in = enter();
        const Tally t = tally(endpoint(target), kConnections);
        ASSERT_EQ(t.failures, 0u) << t.str();
        ASSERT_EQ(t["one"] + t["two"], kConnections) << t.str();
        const SplitVerdict v = chi_square_split({t["one"], t["two"]}, {w1, w2});
        EXPECT_GE(v.p_value, kAlpha) << target << " " << w1 << "/" << w2 << " rejected: " << t.str() << "\n" << v.table;
    }

   private:
    Child v1_, v2_;
};

}  // namespace tcpshift::testing
