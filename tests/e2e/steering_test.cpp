// End-to-end steering: real tcp-echo backends, real clients, in a network namespace per test.
// Splits are judged by a chi-square test at alpha = 0.001 over enough connections: 2000 per
// phase detect a 5-point deviation of the smallest share (tests/unit/stats_test.cpp).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include "client.h"
#include "netns_fixture.h"
#include "stats.h"

namespace tcpshift::testing {
namespace {

constexpr size_t kConnections = 2000;

class SteeringTest : public NetnsTest {};

struct Subset {
    std::string name;
    int weight;
    std::vector<std::string> backends;
};

std::string traffic_shift(const std::string& name, const std::string& listen, const std::vector<Subset>& subsets,
                          const std::string& extra = "") {
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

// The README's dual-stack form: both frontends, each subset named by both its addresses, one
// dual-stack listener per backend.
std::string tcp_echo_dual_stack(int v1, int v2) {
    return traffic_shift("tcp-echo", R"(["0.0.0.0:31400", "[::]:31400"])",
                         {{"v1", v1, {"127.0.0.1:9001", "[::1]:9001"}}, {"v2", v2, {"127.0.0.1:9002", "[::1]:9002"}}});
}

// Sends n connections and judges the split of reply prefixes against the weights.
void expect_split(const Endpoint& target, const std::vector<std::string>& prefixes, const std::vector<double>& weights,
                  size_t n = kConnections) {
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

TEST_F(SteeringTest, BackendsFirstThenApplyFiftyFiftyThenTwentyEighty) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(tcp_echo(50, 50));
    {
        auto in = enter();
        expect_split(endpoint("127.0.0.1:31400"), {"one", "two"}, {50, 50});
    }
    const auto r = tcpshift_here({"set", "tcp-echo", "v1=20", "v2=80"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto in = enter();
    expect_split(endpoint("127.0.0.1:31400"), {"one", "two"}, {20, 80});
}

TEST_F(SteeringTest, ApplyFirstThenBackendsFiftyFiftyThenTwentyEighty) {
    apply(tcp_echo(50, 50));
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    {
        auto in = enter();
        expect_split(endpoint("127.0.0.1:31400"), {"one", "two"}, {50, 50});
    }
    apply(tcp_echo(20, 80));  // a re-apply replaces the resource
    auto in = enter();
    expect_split(endpoint("127.0.0.1:31400"), {"one", "two"}, {20, 80});
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

// Connections opened per subset, as `tcpshift stats --json` counts them at establishment.
std::map<std::string, uint64_t> opened_by_subset(const CommandResult& stats) {
    std::map<std::string, uint64_t> opened;
    const auto j = nlohmann::json::parse(stats.out);
    for (const auto& subset : j["services"][0]["subsets"])
        for (const auto& b : subset["backends"]) opened[subset["name"].get<std::string>()] += b["opened"].get<uint64_t>();
    return opened;
}

// sock_ops learns a connection's backend by recomputing sk_lookup's choice from the live
// table, or, for two minutes after a table change, from what sk_lookup remembered. Both
// ways must count exactly what the clients saw.
TEST_F(SteeringTest, OpenedCountsEqualTheRepliesBeforeAndAfterAWeightChange) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(tcp_echo(20, 80));
    Tally first;
    {
        auto in = enter();
        first = tally(endpoint("127.0.0.1:31400"), 1000);
    }
    ASSERT_EQ(first.failures, 0u) << first.str();
    auto stats = tcpshift_here({"stats", "--json"});
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    auto opened = opened_by_subset(stats);
    EXPECT_EQ(opened["v1"], first["one"]) << stats.out;
    EXPECT_EQ(opened["v2"], first["two"]) << stats.out;

    const auto r = tcpshift_here({"set", "tcp-echo", "v1=70", "v2=30"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    Tally second;
    {
        auto in = enter();
        second = tally(endpoint("127.0.0.1:31400"), 1000);
    }
    ASSERT_EQ(second.failures, 0u) << second.str();
    EXPECT_GT(second["one"], second["two"]) << "the change took effect: " << second.str();
    stats = tcpshift_here({"stats", "--json"});
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    opened = opened_by_subset(stats);
    EXPECT_EQ(opened["v1"], first["one"] + second["one"]) << stats.out;
    EXPECT_EQ(opened["v2"], first["two"] + second["two"]) << stats.out;

    // With v2 gone, its share falls back to v1. Recomputing would name v2; only what
    // sk_lookup remembered of each fallback counts these right.
    v2.stop(SIGKILL);
    Tally third;
    {
        auto in = enter();
        third = tally(endpoint("127.0.0.1:31400"), 500);
    }
    ASSERT_EQ(third.failures, 0u) << third.str();
    ASSERT_EQ(third["one"], 500u) << third.str();
    stats = tcpshift_here({"stats", "--json"});
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    opened = opened_by_subset(stats);
    EXPECT_EQ(opened["v1"], first["one"] + second["one"] + 500) << stats.out;
    EXPECT_EQ(opened["v2"], first["two"] + second["two"]) << stats.out;
}

TEST_F(SteeringTest, ThreeSubsetsTenThirtySixty) {
    Child a = start_echo(netns(), "127.0.0.1:9001", "one");
    Child b = start_echo(netns(), "127.0.0.1:9002", "two");
    Child c = start_echo(netns(), "127.0.0.1:9003", "three");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                        {{"v1", 10, {"127.0.0.1:9001"}}, {"v2", 30, {"127.0.0.1:9002"}}, {"v3", 60, {"127.0.0.1:9003"}}}));
    auto in = enter();
    expect_split(endpoint("127.0.0.1:31400"), {"one", "two", "three"}, {10, 30, 60}, 3000);
}

TEST_F(SteeringTest, WeightZeroTakesNoNewConnections) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(tcp_echo(0, 100));
    auto in = enter();
    const Tally t = tally(endpoint("127.0.0.1:31400"), 1000);
    EXPECT_EQ(t.failures, 0u) << t.str();
    EXPECT_EQ(t["one"], 0u) << t.str();
    EXPECT_EQ(t["two"], 1000u) << t.str();
}

TEST_F(SteeringTest, AStoppedBackendsShareGoesToTheOthersWithNoRefusal) {
    Child a = start_echo(netns(), "127.0.0.1:9001", "one");
    Child b = start_echo(netns(), "127.0.0.1:9002", "two");
    Child c = start_echo(netns(), "127.0.0.1:9003", "three");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                        {{"v1", 20, {"127.0.0.1:9001"}}, {"v2", 40, {"127.0.0.1:9002"}}, {"v3", 40, {"127.0.0.1:9003"}}}));
    b.stop(SIGKILL);
    auto in = enter();
    const Tally t = tally(endpoint("127.0.0.1:31400"), kConnections);
    EXPECT_EQ(t.failures, 0u) << t.str();
    EXPECT_EQ(t["two"], 0u) << t.str();
    EXPECT_EQ(t["one"] + t["three"], kConnections) << t.str();
    // v1 keeps at least its own share: nothing was taken from the living.
    EXPECT_GT(t["one"], kConnections / 10) << t.str();
}

TEST_F(SteeringTest, AllBackendsStoppedRefusesAtOnce) {
    {
        Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
        Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
        apply(tcp_echo(50, 50));
    }  // both killed here
    auto in = enter();
    for (int i = 0; i < 50; ++i) {
        const auto start = std::chrono::steady_clock::now();
        const EchoResult r = echo_once(endpoint("127.0.0.1:31400"), "hello", std::chrono::seconds(2));
        const auto took = std::chrono::steady_clock::now() - start;
        ASSERT_FALSE(r.ok);
        ASSERT_EQ(r.error, "connect: ECONNREFUSED") << "refused by a reset, not left to time out";
        // A reset comes back within the round trip; a timeout would take the full 2 s.
        ASSERT_LT(took, std::chrono::seconds(1));
    }
}

TEST_F(SteeringTest, ARestartedBackendIsPickedUpWithoutAnyCommand) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(tcp_echo(50, 50));
    v2.stop(SIGKILL);
    {
        auto in = enter();
        const Tally t = tally(endpoint("127.0.0.1:31400"), 200);
        EXPECT_EQ(t["one"], 200u) << t.str();
    }
    v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    ASSERT_FALSE(v2.first_line().empty()) << "v2 did not start again";
    auto in = enter();
    expect_split(endpoint("127.0.0.1:31400"), {"one", "two"}, {50, 50});
}

TEST_F(SteeringTest, StatusAndStatsReportWhatHappened) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    apply(tcp_echo(20, 80));
    {
        auto in = enter();
        tally(endpoint("127.0.0.1:31400"), 100);
    }
    const auto status = tcpshift_here({"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    const auto s = nlohmann::json::parse(status.out);
    EXPECT_TRUE(s["attached"].get<bool>());
    const auto& subsets = s["services"][0]["subsets"];
    EXPECT_TRUE(subsets[0]["backends"][0]["ready"].get<bool>());
    EXPECT_FALSE(subsets[1]["backends"][0]["ready"].get<bool>());
    EXPECT_DOUBLE_EQ(subsets[1]["percent"].get<double>(), 80.0);

    const auto stats = tcpshift_here({"stats", "--json"});
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    const auto j = nlohmann::json::parse(stats.out);
    const auto& svc = j["services"][0];
    EXPECT_EQ(svc["lookups"].get<uint64_t>(), 100u);
    EXPECT_EQ(svc["subsets"][0]["steered"].get<uint64_t>(), 100u);
    EXPECT_GT(svc["fallbacks"].get<uint64_t>(), 0u) << "v2 has no listener, so its share fell back";
    EXPECT_EQ(svc["refused"].get<uint64_t>(), 0u);
}

}  // namespace
}  // namespace tcpshift::testing
