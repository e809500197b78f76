// Address families: an IPv6 frontend, IPv4 clients of a dual-stack listener, both families
// split alike over dual-stack backends, and a frontend family no backend can take refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "stats.h"
#include "steering_fixture.h"

namespace tcpshift::testing {
namespace {

// The README's dual-stack form: both frontends, each subset named by both its addresses, one
// dual-stack listener per backend.
std::string tcp_echo_dual_stack(int v1, int v2) {
    return traffic_shift("tcp-echo", R"(["0.0.0.0:31400", "[::]:31400"])",
                         {{"v1", v1, {"127.0.0.1:9001", "[::1]:9001"}}, {"v2", v2, {"127.0.0.1:9002", "[::1]:9002"}}});
}

TEST_F(SteeringTest, IPv6Frontend) {
    Child v1 = start_echo(netns(), "[::1]:9001", "one");
    Child v2 = start_echo(netns(), "[::1]:9002", "two");
    apply(traffic_shift("echo6", R"(["[::]:31400"])", {{"v1", 30, {"[::1]:9001"}}, {"v2", 70, {"[::1]:9002"}}}));
    auto in = enter();
    expect_split(endpoint("[::1]:31400"), {"one", "two"}, {30, 70});
}

TEST_F(SteeringTest, IPv4ClientsReachADualStackListener) {
    // The backends listen on [::] (IPv4 too); the config names them by their IPv4 address.
    Child v1 = start_echo(netns(), "[::]:9001", "one");
    Child v2 = start_echo(netns(), "[::]:9002", "two");
    apply(tcp_echo(40, 60));
    {
        auto in = enter();
        expect_split(endpoint("127.0.0.1:31400"), {"one", "two"}, {40, 60});
    }
    // sock_ops accounts them too, though the accepted sockets carry v4-mapped addresses.
    const auto stats = tcpshift_here({"stats", "--json"});
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    uint64_t opened = 0;
    const auto j = nlohmann::json::parse(stats.out);
    for (const auto& subset : j["services"][0]["subsets"])
        for (const auto& b : subset["backends"]) opened += b["opened"].get<uint64_t>();
    EXPECT_EQ(opened, kConnections) << stats.out;
}

// Dual-stack: IPv4 and IPv6 clients alike get the split, and one [::] listener backs both
// entries of its subset.
TEST_F(SteeringTest, IPv4AndIPv6ClientsGetTheSplitFromDualStackBackends) {
    Child v1 = start_echo(netns(), "[::]:9001", "one");
    Child v2 = start_echo(netns(), "[::]:9002", "two");
    apply(tcp_echo_dual_stack(40, 60));
    const auto status = tcpshift_here({"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    const auto j = nlohmann::json::parse(status.out);
    for (const auto& subset : j["services"][0]["subsets"])
        for (const auto& b : subset["backends"])
            EXPECT_TRUE(b["ready"].get<bool>()) << b["address"] << " is backed by the dual-stack listener";
    auto in = enter();
    const Tally v4 = tally_from_many_sources(endpoint("127.0.0.1:31400"), kConnections);
    ASSERT_EQ(v4.failures, 0u) << v4.str();
    const auto v = chi_square_split({v4["one"], v4["two"]}, {40, 60});
    EXPECT_GE(v.p_value, kAlpha) << "IPv4 clients: " << v4.str() << "\n" << v.table;
    expect_split(endpoint("[::1]:31400"), {"one", "two"}, {40, 60});
}

// A frontend family that no backend can take is refused with the reason, and nothing changes:
// the README's old example reset every IPv6 client.
TEST_F(SteeringTest, AnIPv6FrontendOverIPv4BackendsIsRefused) {
    apply(tcp_echo(50, 50));
    const auto before = tcpshift_here({"status", "--json"}).out;
    const auto path = write_temp_file(
        "trap.yaml", traffic_shift("tcp-echo", R"(["0.0.0.0:31400", "[::]:31400"])",
                                   {{"v1", 50, {"127.0.0.1:9001"}}, {"v2", 50, {"127.0.0.1:9002"}}}));
    for (const auto& r : {tcpshift_here({"apply", "-f", path}), tcpshift({"explain", "-f", path})}) {
        EXPECT_EQ(r.exit_code, 2) << r.err;
        EXPECT_NE(r.err.find("frontend [::]:31400 takes IPv6 clients, but every backend of the service is IPv4"),
                  std::string::npos)
            << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
    EXPECT_EQ(tcpshift_here({"status", "--json"}).out, before);
}

}  // namespace
}  // namespace tcpshift::testing
