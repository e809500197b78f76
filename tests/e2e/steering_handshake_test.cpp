// Weight changes while handshakes are in flight, held half-way by an nftables rule: every
// connection is served and counted exactly once, with SYN cookies or without.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "steering_fixture.h"

namespace tcpshift::testing {
namespace {

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

// Every reply of every phase of a test, to hold against what `tcpshift stats` counted.
class RepliesSoFar {
   public:
    void add(const Tally& t) {
        for (const auto& [prefix, count] : t.by_prefix) all_.by_prefix[prefix] += count;
    }
    uint64_t operator[](const std::string& prefix) const { return all_[prefix]; }

    // Each subset opened one connection per reply it sent, the service looked each connection
    // up once and refused none; `when` names the phase.
    void expect_counted_in(const CommandResult& stats, const std::string& when) const {
        ASSERT_EQ(stats.exit_code, 0) << stats.err;
        const ServiceCounts c = service_counts(stats);
        EXPECT_EQ(c.opened.at("v1"), all_["one"]) << when << "\n" << stats.out;
        EXPECT_EQ(c.opened.at("v2"), all_["two"]) << when << "\n" << stats.out;
        EXPECT_EQ(c.lookups, all_["one"] + all_["two"]) << when << ": one lookup per connection\n" << stats.out;
        EXPECT_EQ(c.refused, 0u) << when << "\n" << stats.out;
    }

   private:
    Tally all_;
};

// Turns SYN cookies on for every handshake in the namespace, not only on a full queue.
void always_syn_cookies(const std::string& netns) {
    ASSERT_EQ(run_command({"/sbin/ip", "netns", "exec", netns, "/sbin/sysctl", "-q", "-w", "net.ipv4.tcp_syncookies=2"})
                  .exit_code,
              0);
}

// Waits up to 3 s for every one of n clients to have its SYN answered.
void wait_until_connected(const ConcurrentClients& clients, size_t n) {
    for (int i = 0; i < 300 && clients.connected() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

}  // namespace

void SteeringTest::flip_with_handshakes_held(size_t n, uint64_t served_before, Tally* held) {
    HeldHandshakes hold(netns(), 31400);
    ASSERT_TRUE(hold.held()) << "nft: " << hold.error();
    ConcurrentClients clients(netns(), endpoint("127.0.0.1:31400"), n, std::chrono::seconds(5));
    wait_until_connected(clients, n);
    ASSERT_EQ(clients.connected(), n) << "every SYN answered before the change";
    const auto mid = tcpshift_here({"stats", "--json"});
    ASSERT_EQ(mid.exit_code, 0) << mid.err;
    const ServiceCounts c = service_counts(mid);
    ASSERT_EQ(c.opened.at("v1") + c.opened.at("v2"), served_before)
        << "no held handshake completed at a backend before the change\n" << mid.out;

    const auto r = tcpshift_here({"set", "tcp-echo", "v1=70", "v2=30"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(hold.release());
    *held = clients.wait();
    EXPECT_EQ(held->failures, 0u) << "a flip between a SYN and its final ACK failed a client: " << held->str();
    EXPECT_EQ((*held)["one"] + (*held)["two"], n) << held->str();
}

// Exact accounting across a weight change that happens while handshakes are in flight:
// kHeld clients send their SYN under 20/80 and complete under 70/30. Every backend's opened
// count is the replies it sent, whether the kernel kept the handshake (a request socket: the
// connection stays where the SYN was steered) or SYN cookies made the final ACK look up again.
// Then v2 stops and its share falls back to v1, counted at v1. A service's lookups are its
// connections, however many packets each took.
void SteeringTest::expect_exact_counts_across_a_flip_mid_handshake(bool syn_cookies) {
    constexpr size_t kHeld = 200;
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    if (syn_cookies) {
        ASSERT_NO_FATAL_FAILURE(always_syn_cookies(netns()));
    }
    apply(tcp_echo(20, 80));
    const auto replies = [this](size_t n) {
        auto in = enter();
        return tally(endpoint("127.0.0.1:31400"), n);
    };
    const auto cookies_received = [this] {
        auto in = enter();
        return tcp_ext_counter("SyncookiesRecv");
    };
    RepliesSoFar all;

    const Tally first = replies(1000);
    ASSERT_EQ(first.failures, 0u) << first.str();
    all.add(first);
    all.expect_counted_in(tcpshift_here({"stats", "--json"}), "before the change");

    const uint64_t cookies_before = cookies_received();
    Tally held;
    ASSERT_NO_FATAL_FAILURE(flip_with_handshakes_held(kHeld, first["one"] + first["two"], &held));
    all.add(held);
    all.expect_counted_in(tcpshift_here({"stats", "--json"}), "after a change with every handshake in flight");
    if (syn_cookies) {
        EXPECT_GE(cookies_received() - cookies_before, kHeld) << "the held handshakes completed by SYN cookie";
    }

    const Tally second = replies(1000);
    ASSERT_EQ(second.failures, 0u) << second.str();
    EXPECT_GT(second["one"], second["two"]) << "the change took effect: " << second.str();
    all.add(second);
    all.expect_counted_in(tcpshift_here({"stats", "--json"}), "after the change");

    // With v2 gone, its share falls back to v1, and is counted there.
    v2.stop(SIGKILL);
    const Tally third = replies(500);
    ASSERT_EQ(third.failures, 0u) << third.str();
    ASSERT_EQ(third["one"], 500u) << third.str();
    all.add(third);
    all.expect_counted_in(tcpshift_here({"stats", "--json"}), "with v2 stopped");
}

namespace {

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
    ASSERT_NO_FATAL_FAILURE(always_syn_cookies(netns()));
    apply(tcp_echo(0, 100));
    HeldHandshakes hold(netns(), 31400);
    ASSERT_TRUE(hold.held()) << "nft: " << hold.error();
    ConcurrentClients clients(netns(), endpoint("127.0.0.1:31400"), kHeld, std::chrono::seconds(5));
    wait_until_connected(clients, kHeld);
    ASSERT_EQ(clients.connected(), kHeld);
    const auto r = tcpshift_here({"set", "tcp-echo", "v1=100", "v2=0"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(hold.release());
    const Tally held = clients.wait();
    EXPECT_EQ(held.failures, 0u) << held.str();
}

}  // namespace
}  // namespace tcpshift::testing
