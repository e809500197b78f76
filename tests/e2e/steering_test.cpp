// End-to-end steering: real tcp-echo backends, real clients, in a network namespace per test.
// Splits are judged by a chi-square test at alpha = 0.001 over enough connections: 2000 per
// phase detect a 5-point deviation of the smallest share (tests/unit/stats_test.cpp).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "client.h"
#include "netns_fixture.h"
#include "stats.h"

namespace tcpshift::testing {
namespace {

constexpr size_t kConnections = 2000;

class SteeringTest : public NetnsTest {
   protected:
    void expect_exact_counts_across_a_flip_mid_handshake(bool syn_cookies);
};

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

// Holds every handshake to a port of the namespace half-way: an nftables rule drops the
// clients' packets to the port that carry an ACK without a SYN, so each SYN is looked up,
// steered and answered (the client is established), but the server sees the final ACK only
// when TCP retransmits it, with the client's data, after release(). netem, the usual way to
// slow a handshake, is not in the test host's kernel (CONFIG_NET_SCH_NETEM is not set, and it
// loads no modules), and a delay would leave the overlap with a flip to timing: this holds
// every handshake for exactly as long as the test needs.
class HeldHandshakes {
   public:
    HeldHandshakes(const std::string& netns, int port) : netns_(netns) {
        const std::string rules = "table inet tcpshift_test_hold {\n"
                                  "  chain out {\n"
                                  "    type filter hook output priority 0; policy accept;\n"
                                  "    tcp dport " +
                                  std::to_string(port) +
                                  " tcp flags & (syn | ack) == ack drop\n"
                                  "  }\n"
                                  "}\n";
        const auto r = run_command(
            {"/sbin/ip", "netns", "exec", netns_, "/usr/sbin/nft", "-f", write_temp_file("hold.nft", rules)});
        held_ = r.exit_code == 0;
        error_ = r.err;
    }
    ~HeldHandshakes() { release(); }
    HeldHandshakes(const HeldHandshakes&) = delete;
    HeldHandshakes& operator=(const HeldHandshakes&) = delete;

    bool held() const { return held_; }
    const std::string& error() const { return error_; }
    // Lets the final ACKs through; false when the rule could not be removed.
    bool release() {
        if (!held_) return true;
        held_ = false;
        return run_command({"/sbin/ip", "netns", "exec", netns_, "/usr/sbin/nft", "delete", "table", "inet",
                            "tcpshift_test_hold"})
                   .exit_code == 0;
    }

   private:
    std::string netns_;
    bool held_ = false;
    std::string error_;
};

// A TcpExt counter of the calling thread's namespace (/proc/net/netstat), e.g. SyncookiesRecv.
uint64_t tcp_ext_counter(const std::string& name) {
    std::ifstream in("/proc/thread-self/net/netstat");
    std::string names, values;
    while (std::getline(in, names) && std::getline(in, values)) {
        if (!names.starts_with("TcpExt:")) continue;
        std::istringstream n(names), v(values);
        std::string key, value;
        while (n >> key && v >> value)
            if (key == name) return std::stoull(value);
    }
    return 0;
}

// n clients at once, each in its own thread in the namespace: each connects, which returns
// when its SYN-ACK has arrived, counts itself in connected(), and exchanges a line.
class ConcurrentClients {
   public:
    ConcurrentClients(const std::string& netns, const Endpoint& target, size_t n, std::chrono::milliseconds timeout)
        : results_(n) {
        for (size_t i = 0; i < n; ++i)
            threads_.emplace_back([this, netns, target, timeout, i] {
                auto in = ScopedNetns::enter(netns);
                if (!in) {
                    results_[i].error = in.error().message;
                    return;
                }
                EchoConnection c = EchoConnection::open(target, timeout, &results_[i]);
                if (!c.connected()) return;
                ++connected_;
                results_[i] = c.exchange("hello", timeout);
            });
    }
    ~ConcurrentClients() { wait(); }
    ConcurrentClients(const ConcurrentClients&) = delete;
    ConcurrentClients& operator=(const ConcurrentClients&) = delete;

    size_t connected() const { return connected_; }
    // Joins the clients and tallies their replies.
    Tally wait() {
        for (auto& t : threads_)
            if (t.joinable()) t.join();
        Tally tally;
        for (const auto& r : results_) {
            if (!r.ok) {
                ++tally.failures;
                if (tally.first_errors.size() < 5) tally.first_errors.push_back(r.error);
                continue;
            }
            ++tally.by_prefix[r.reply.substr(0, r.reply.find(' '))];
        }
        return tally;
    }

   private:
    std::vector<EchoResult> results_;
    std::vector<std::thread> threads_;
    std::atomic<size_t> connected_{0};
};

struct ServiceCounts {
    std::map<std::string, uint64_t> opened;  // by subset
    uint64_t lookups = 0;
    uint64_t refused = 0;
};

ServiceCounts service_counts(const CommandResult& stats) {
    ServiceCounts c;
    const auto j = nlohmann::json::parse(stats.out);
    const auto& svc = j["services"][0];
    c.lookups = svc["lookups"].get<uint64_t>();
    c.refused = svc["refused"].get<uint64_t>();
    for (const auto& subset : svc["subsets"])
        for (const auto& b : subset["backends"])
            c.opened[subset["name"].get<std::string>()] += b["opened"].get<uint64_t>();
    return c;
}

// Exact accounting across a weight change that happens while handshakes are in flight:
// kHeld clients send their SYN under 20/80 and complete under 70/30. Every backend's opened
// count is the replies it sent, whether the kernel kept the handshake (a request socket: the
// connection stays where the SYN was steered) or SYN cookies made the final ACK look up again.
// Then v2 stops and its share falls back to v1, counted at v1. A service's lookups are its
// connections, however many packets each took.
void SteeringTest::expect_exact_counts_across_a_flip_mid_handshake(bool syn_cookies) {
    constexpr size_t kHeld = 200;
    const Endpoint frontend = endpoint("127.0.0.1:31400");
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    if (syn_cookies) {
        ASSERT_EQ(run_command({"/sbin/ip", "netns", "exec", netns(), "/sbin/sysctl", "-q", "-w",
                               "net.ipv4.tcp_syncookies=2"})
                      .exit_code,
                  0);
    }
    apply(tcp_echo(20, 80));
    Tally all;  // every reply of every phase
    const auto add = [&all](const Tally& t) {
        for (const auto& [prefix, count] : t.by_prefix) all.by_prefix[prefix] += count;
    };
    const auto expect_counts_match = [&](const std::string& when) {
        const auto stats = tcpshift_here({"stats", "--json"});
        ASSERT_EQ(stats.exit_code, 0) << stats.err;
        const ServiceCounts c = service_counts(stats);
        EXPECT_EQ(c.opened.at("v1"), all["one"]) << when << "\n" << stats.out;
        EXPECT_EQ(c.opened.at("v2"), all["two"]) << when << "\n" << stats.out;
        EXPECT_EQ(c.lookups, all["one"] + all["two"]) << when << ": one lookup per connection\n" << stats.out;
        EXPECT_EQ(c.refused, 0u) << when << "\n" << stats.out;
    };

    Tally first;
    {
        auto in = enter();
        first = tally(frontend, 1000);
    }
    ASSERT_EQ(first.failures, 0u) << first.str();
    add(first);
    expect_counts_match("before the change");

    const auto cookies_received = [this] {
        auto in = enter();
        return tcp_ext_counter("SyncookiesRecv");
    };
    const uint64_t cookies_before = cookies_received();
    {
        HeldHandshakes hold(netns(), 31400);
        ASSERT_TRUE(hold.held()) << "nft: " << hold.error();
        ConcurrentClients clients(netns(), frontend, kHeld, std::chrono::seconds(5));
        for (int i = 0; i < 300 && clients.connected() < kHeld; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        ASSERT_EQ(clients.connected(), kHeld) << "every SYN answered before the change";
        const auto mid = tcpshift_here({"stats", "--json"});
        ASSERT_EQ(mid.exit_code, 0) << mid.err;
        const ServiceCounts c = service_counts(mid);
        ASSERT_EQ(c.opened.at("v1") + c.opened.at("v2"), first["one"] + first["two"])
            << "no held handshake completed at a backend before the change\n" << mid.out;

        const auto r = tcpshift_here({"set", "tcp-echo", "v1=70", "v2=30"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        ASSERT_TRUE(hold.release());
        const Tally held = clients.wait();
        EXPECT_EQ(held.failures, 0u) << "a flip between a SYN and its final ACK failed a client: " << held.str();
        EXPECT_EQ(held["one"] + held["two"], kHeld) << held.str();
        add(held);
    }
    expect_counts_match("after a change with every handshake in flight");
    if (syn_cookies) {
        EXPECT_GE(cookies_received() - cookies_before, kHeld) << "the held handshakes completed by SYN cookie";
    }

    Tally second;
    {
        auto in = enter();
        second = tally(frontend, 1000);
    }
    ASSERT_EQ(second.failures, 0u) << second.str();
    EXPECT_GT(second["one"], second["two"]) << "the change took effect: " << second.str();
    add(second);
    expect_counts_match("after the change");

    // With v2 gone, its share falls back to v1, and is counted there.
    v2.stop(SIGKILL);
    Tally third;
    {
        auto in = enter();
        third = tally(frontend, 500);
    }
    ASSERT_EQ(third.failures, 0u) << third.str();
    ASSERT_EQ(third["one"], 500u) << third.str();
    add(third);
    expect_counts_match("with v2 stopped");
}

TEST_F(SteeringTest, OpenedCountsEqualTheRepliesBeforeAndAfterAWeightChange) {
    expect_exact_counts_across_a_flip_mid_handshake(false);
}

// With SYN cookies always on the kernel keeps no request socket: the final ACK is looked up
// again, under the new table, and must still be served and counted once.
TEST_F(SteeringTest, OpenedCountsEqualTheRepliesAcrossAWeightChangeWithSynCookies) {
    expect_exact_counts_across_a_flip_mid_handshake(true);
}

// With SYN cookies the final ACK is looked up again under the live table. Were it steered by
// the new table to a backend whose listener sent no cookie lately (here: weight 0 before),
// the kernel would not check the cookie there (tcp_synq_no_recent_overflow) and would reset
// the client; sk_lookup remembers each flow's backend instead.
TEST_F(SteeringTest, AFlipMidHandshakeToABackendThatSentNoCookieResetsNoClient) {
    constexpr size_t kHeld = 50;
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    ASSERT_EQ(run_command({"/sbin/ip", "netns", "exec", netns(), "/sbin/sysctl", "-q", "-w", "net.ipv4.tcp_syncookies=2"})
                  .exit_code,
              0);
    apply(tcp_echo(0, 100));
    HeldHandshakes hold(netns(), 31400);
    ASSERT_TRUE(hold.held()) << "nft: " << hold.error();
    ConcurrentClients clients(netns(), endpoint("127.0.0.1:31400"), kHeld, std::chrono::seconds(5));
    for (int i = 0; i < 300 && clients.connected() < kHeld; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(clients.connected(), kHeld);
    const auto r = tcpshift_here({"set", "tcp-echo", "v1=100", "v2=0"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(hold.release());
    const Tally held = clients.wait();
    EXPECT_EQ(held.failures, 0u) << held.str();
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

// A dead backend's share is re-drawn over the live ones in proportion to their weights
// (DESIGN.md, "Fallback keeps the weights"): with v2 (40) dead, v1 (20) and v3 (40) split
// 1:2, not 1:1 and not all to one of them.
TEST_F(SteeringTest, AStoppedBackendsShareGoesToTheOthersWithNoRefusal) {
    Child a = start_echo(netns(), "127.0.0.1:9001", "one");
    Child b = start_echo(netns(), "127.0.0.1:9002", "two");
    Child c = start_echo(netns(), "127.0.0.1:9003", "three");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                        {{"v1", 20, {"127.0.0.1:9001"}}, {"v2", 40, {"127.0.0.1:9002"}}, {"v3", 40, {"127.0.0.1:9003"}}}));
    b.stop(SIGKILL);
    const std::vector<double> renormalised{20, 0, 40};
    ASSERT_LE(sample_size_for(renormalised, 0.05), kConnections);
    auto in = enter();
    const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), kConnections);
    EXPECT_EQ(t.failures, 0u) << t.str();
    EXPECT_EQ(t["two"], 0u) << t.str();
    EXPECT_EQ(t["one"] + t["three"], kConnections) << t.str();
    const SplitVerdict v = chi_square_split({t["one"], t["two"], t["three"]}, renormalised);
    EXPECT_GE(v.p_value, kAlpha) << "the dead share is not spread by weight: " << t.str() << "\n" << v.table;
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
