// The load-balancing and connection policies of Istio's trafficPolicy, enforced in the kernel:
// loadBalancer.simple ROUND_ROBIN (exact over each cycle) and RANDOM (a draw per connection),
// consistentHash.maglev.tableSize (the table's resolution), and connectionPool.tcp.tcpKeepalive
// (the timer `ss -o` shows). Each test also runs what a broken data plane would do, so that it
// fails on one: the hash that ignores the mode, the connection that did not come through a
// frontend.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <string>

#include "base/fd.h"
#include "stats.h"
#include "steering_fixture.h"
#include "process.h"

namespace tcpshift::testing {
namespace {

std::string with_policy(int v1, int v2, const std::string& policy, const std::string& listen = R"(["0.0.0.0:31400"])",
                        const std::vector<std::string>& v1_backends = {"127.0.0.1:9001"},
                        const std::vector<std::string>& v2_backends = {"127.0.0.1:9002"}) {
    return traffic_shift("tcp-echo", listen, {{"v1", v1, v1_backends}, {"v2", v2, v2_backends}},
                         "  policy:\n" + policy);
}

const std::string kRoundRobin = "    loadBalancer: {simple: ROUND_ROBIN}\n";
const std::string kRandom = "    loadBalancer: {simple: RANDOM}\n";

// n connections one after another; the replies' first words in order.
Tally in_sequence(const Endpoint& target, size_t n) { return tally(target, n); }

// One connection from 127.0.0.1:sport, closed with a reset so that the same 4-tuple can connect
// again at once (no TIME_WAIT); the reply's first word, or "" on failure.
std::string reply_from(const Endpoint& target, uint16_t sport) {
    Fd fd(socket(AF_INET, SOCK_STREAM, 0));
    if (!fd) return "";
    const int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    timeval tv{.tv_sec = 3, .tv_usec = 0};
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in local{.sin_family = AF_INET, .sin_port = htons(sport), .sin_addr = {htonl(INADDR_LOOPBACK)}};
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) return "";
    sockaddr_in remote{.sin_family = AF_INET, .sin_port = htons(target.port), .sin_addr = {htonl(INADDR_LOOPBACK)}};
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&remote), sizeof(remote)) != 0) return "";
    if (write(fd.get(), "x\n", 2) != 2) return "";
    std::string reply;
    char c;
    while (reply.size() < 256 && read(fd.get(), &c, 1) == 1 && c != '\n') reply += c;
    const linger reset{.l_onoff = 1, .l_linger = 0};
    setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    return reply.substr(0, reply.find(' '));
}

// The backends that answered `tries` connections of one fixed 4-tuple.
std::set<std::string> answers_of_one_tuple(const Endpoint& target, size_t tries) {
    std::set<std::string> seen;
    for (size_t i = 0; i < tries; ++i) seen.insert(reply_from(target, 40123));
    return seen;
}

TEST_F(SteeringTest, RoundRobinIsExactForSmallCounts) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(with_policy(20, 80, kRoundRobin));
    {
        auto in = enter();
        const Tally t = in_sequence(endpoint("127.0.0.1:31400"), 20);
        EXPECT_EQ(t.failures, 0u) << t.str();
        EXPECT_EQ(t["one"], 4u) << t.str();
        EXPECT_EQ(t["two"], 16u) << t.str();
        // Any run of whole cycles is exact, wherever it starts.
        const Tally more = in_sequence(endpoint("127.0.0.1:31400"), 35);
        EXPECT_EQ(more["one"], 7u) << more.str();
        EXPECT_EQ(more["two"], 28u) << more.str();
    }
    const auto r = tcpshift_here({"set", "tcp-echo", "v1=50", "v2=50"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto in = enter();
    const Tally t = in_sequence(endpoint("127.0.0.1:31400"), 10);
    EXPECT_EQ(t["one"], 5u) << t.str();
    EXPECT_EQ(t["two"], 5u) << t.str();
}

TEST_F(SteeringTest, RoundRobinSpreadsThreeUnequalSubsetsAndTheirBackendsExactly) {
    Child a = start_echo(netns(), "127.0.0.1:9001", "a");
    Child b1 = start_echo(netns(), "127.0.0.1:9002", "b1");
    Child b2 = start_echo(netns(), "127.0.0.1:9003", "b2");
    Child c = start_echo(netns(), "127.0.0.1:9004", "c");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                        {{"v1", 10, {"127.0.0.1:9001"}},
                         {"v2", 30, {"127.0.0.1:9002", "127.0.0.1:9003"}},
                         {"v3", 60, {"127.0.0.1:9004"}}},
                        "  policy:\n" + kRoundRobin));
    auto in = enter();
    // The cycle is 10 turns (1/3/6), repeated twice so that v2's two backends take 3 each.
    const Tally t = in_sequence(endpoint("127.0.0.1:31400"), 40);
    EXPECT_EQ(t.failures, 0u) << t.str();
    EXPECT_EQ(t["a"], 4u) << t.str();
    EXPECT_EQ(t["b1"], 6u) << t.str();
    EXPECT_EQ(t["b2"], 6u) << t.str();
    EXPECT_EQ(t["c"], 24u) << t.str();
}

TEST_F(SteeringTest, RoundRobinServesIpv6ClientsAndADeadBackendsTurnsGoToTheLive) {
    Child v1 = start_echo(netns(), "[::]:9001", "one");
    Child v2 = start_echo(netns(), "[::]:9002", "two");
    apply(with_policy(20, 80, kRoundRobin, R"(["127.0.0.1:31400", "[::1]:31400"])", {"127.0.0.1:9001", "[::1]:9001"},
                      {"127.0.0.1:9002", "[::1]:9002"}));
    {
        auto in = enter();
        const Tally t = in_sequence(endpoint("[::1]:31400"), 20);
        EXPECT_EQ(t.failures, 0u) << t.str();
        EXPECT_EQ(t["one"], 4u) << t.str();
        EXPECT_EQ(t["two"], 16u) << t.str();
    }
    v1.stop(SIGKILL);
    auto in = enter();
    for (const char* frontend : {"127.0.0.1:31400", "[::1]:31400"}) {
        const Tally t = in_sequence(endpoint(frontend), 50);
        EXPECT_EQ(t.failures, 0u) << frontend << ": " << t.str();
        EXPECT_EQ(t["two"], 50u) << frontend << ": " << t.str();
    }
}

TEST_F(SteeringTest, RandomDrawsAnewForTheSameFourTupleAndKeepsTheWeights) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(tcp_echo(50, 50));
    {
        auto in = enter();
        const auto seen = answers_of_one_tuple(endpoint("127.0.0.1:31400"), 30);
        EXPECT_EQ(seen.size(), 1u) << "the hash gives one 4-tuple one backend; the control failed";
    }
    apply(with_policy(50, 50, kRandom));
    {
        auto in = enter();
        const auto seen = answers_of_one_tuple(endpoint("127.0.0.1:31400"), 30);
        EXPECT_EQ(seen, (std::set<std::string>{"one", "two"})) << "30 draws of one 4-tuple; 2^-29 to see one backend";
    }
    apply(with_policy(20, 80, kRandom));
    auto in = enter();
    const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), kConnections);
    ASSERT_EQ(t.failures, 0u) << t.str();
    const SplitVerdict v = chi_square_split({t["one"], t["two"]}, {20, 80});
    EXPECT_GE(v.p_value, kAlpha) << t.str() << "\n" << v.table;
}

// consistentHash.maglev.tableSize: 7 slots cannot split 50/50, so the shares are 4/7 and 3/7;
// the default table (4093 slots) splits within one slot of exact.
TEST_F(SteeringTest, MaglevTableSizeSetsTheResolutionOfTheSplit) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    const std::string config = with_policy(50, 50, "    loadBalancer: {consistentHash: {maglev: {tableSize: 7}}}\n");
    apply(config);
    const auto explain = tcpshift({"explain", "-f", write_temp_file("maglev.yaml", config)});
    ASSERT_EQ(explain.exit_code, 0) << explain.err;
    EXPECT_NE(explain.out.find("7 slots"), std::string::npos) << explain.out;
    auto in = enter();
    const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), kConnections);
    ASSERT_EQ(t.failures, 0u) << t.str();
    const bool one_more = t["one"] > t["two"];
    const SplitVerdict v = chi_square_split({t["one"], t["two"]}, {one_more ? 4.0 : 3.0, one_more ? 3.0 : 4.0});
    EXPECT_GE(v.p_value, kAlpha) << "not 4/7 and 3/7: " << t.str() << "\n" << v.table;
    const SplitVerdict even = chi_square_split({t["one"], t["two"]}, {50, 50});
    EXPECT_LT(even.p_value, kAlpha) << "a 7-slot table split like the default one: " << t.str();
}

// The keepalive timer of the backend's side of a connection, from `ss -o`: the accepted socket
// whose local port is `local_port` (a steered connection keeps the frontend's address) and
// whose peer is `client_port`; nullopt without one. ss writes 7.5 s as "7.500ms", 12 s as
// "12sec" and 90 s as "1min30sec".
std::optional<double> keepalive_seconds(const std::string& netns, uint16_t local_port, uint16_t client_port) {
    const auto ss = run_command({"/usr/bin/ss", "-tnoH", "state", "established", "( sport = :" + std::to_string(local_port) +
                                                                             " and dport = :" +
                                                                             std::to_string(client_port) + " )"},
                                Placement{.netns = netns});
    std::smatch m;
    static const std::regex timer(R"(timer:\(keepalive,(?:([0-9]+)min)?(?:([0-9]+)(?:sec|\.))?(?:([0-9]+)ms)?,)");
    if (!std::regex_search(ss.out, m, timer)) return std::nullopt;
    auto part = [&](size_t i) { return m[i].matched ? std::stod(m[i].str()) : 0.0; };
    return part(1) * 60 + part(2) + part(3) / 1000;
}

// An open connection to 127.0.0.1:port with a line answered; its local port, or 0.
uint16_t open_connection(uint16_t port, Fd& fd) {
    fd = Fd(socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in remote{.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = {htonl(INADDR_LOOPBACK)}};
    if (!fd || connect(fd.get(), reinterpret_cast<sockaddr*>(&remote), sizeof(remote)) != 0) return 0;
    char c;
    if (write(fd.get(), "x\n", 2) != 2) return 0;
    while (read(fd.get(), &c, 1) == 1 && c != '\n') {
    }
    sockaddr_in local{};
    socklen_t len = sizeof(local);
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &len);
    return ntohs(local.sin_port);
}

TEST_F(SteeringTest, TcpKeepaliveIsSetOnTheServicesConnectionsOnly) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    apply(with_policy(100, 0, "    connectionPool:\n      tcp:\n        tcpKeepalive: {time: 7s, interval: 3s, probes: 4}\n"));
    Fd steered, direct;
    uint16_t steered_port = 0, direct_port = 0;
    {
        auto in = enter();
        steered_port = open_connection(31400, steered);
        direct_port = open_connection(9001, direct);
    }
    ASSERT_NE(steered_port, 0);
    ASSERT_NE(direct_port, 0);
    const auto timer = keepalive_seconds(netns(), 31400, steered_port);
    ASSERT_TRUE(timer) << "no keepalive timer on the backend's side of a connection through the frontend:\n"
                       << run_command({"/usr/bin/ss", "-tnoa"}, Placement{.netns = netns()}).out;
    EXPECT_GT(*timer, 4.0);
    EXPECT_LE(*timer, 7.0);
    EXPECT_FALSE(keepalive_seconds(netns(), 9001, direct_port))
        << "a connection straight to the backend, not through the frontend, got the service's keepalive";

    // Without the policy, new connections get no timer.
    apply(tcp_echo(100, 0));
    Fd later;
    uint16_t later_port = 0;
    {
        auto in = enter();
        later_port = open_connection(31400, later);
    }
    ASSERT_NE(later_port, 0);
    EXPECT_FALSE(keepalive_seconds(netns(), 31400, later_port));
}

}  // namespace
}  // namespace tcpshift::testing
