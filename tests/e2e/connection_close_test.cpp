// Connections closed on purpose, with real clients: connectionPool.tcp.maxConnectionDuration
// and idleTimeout (the agent's sweep) and `tcpshift rebalance` after a weight shift. Each runs
// twice: on the path tcpshift probes for (the bpf_sock_destroy iterator from Linux 6.5, netlink
// SOCK_DESTROY before), and on netlink SOCK_DESTROY forced by TCPSHIFT_DESTROY=netlink. A close
// is an abort: the client reads ECONNRESET.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent_fixture.h"
#include "base/fd.h"
#include "steering_fixture.h"

namespace tcpshift::testing {
namespace {

using Clock = std::chrono::steady_clock;

// The destroy path a test forces: "" lets tcpshift probe.
struct Path {
    std::string env;   // TCPSHIFT_DESTROY
    std::string name;  // as status and the agent's log say it
};
const Path kNetlink{"netlink", "netlink SOCK_DESTROY"};
void PrintTo(const Path& path, std::ostream* os) { *os << path.name; }

// What the probe must find, judged from the kernel's release alone: bpf_sock_destroy came in
// Linux 6.5.
Path probed_path() {
    utsname u{};
    int major = 0, minor = 0;
    if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return {"", "unknown kernel"};
    const bool has_iterator = major > 6 || (major == 6 && minor >= 5);
    return {"", has_iterator ? "bpf_sock_destroy iterator" : kNetlink.name};
}
const Path kProbed = probed_path();

// Sets TCPSHIFT_DESTROY for the processes the test starts, and clears it after.
class ForcedPath {
   public:
    explicit ForcedPath(const Path& path) {
        if (!path.env.empty()) ::setenv("TCPSHIFT_DESTROY", path.env.c_str(), 1);
    }
    ~ForcedPath() { ::unsetenv("TCPSHIFT_DESTROY"); }
};

// A client connection to 127.0.0.1:`port` in the current namespace.
struct Conn {
    Fd fd;
    Clock::time_point opened;
    std::string backend;  // the first word of the first reply

    // Sends a line and reads the reply's first word; "" when the connection failed.
    std::string ask() {
        if (::send(fd.get(), "x\n", 2, MSG_NOSIGNAL) != 2) return "";
        std::string reply;
        char c;
        while (reply.size() < 64 && ::read(fd.get(), &c, 1) == 1 && c != '\n') reply += c;
        return reply.substr(0, reply.find(' '));
    }
};

std::optional<Conn> open_conn(uint16_t port) {
    Conn c{Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)), Clock::now(), ""};
    timeval tv{.tv_sec = 3, .tv_usec = 0};
    ::setsockopt(c.fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in to{.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = {htonl(INADDR_LOOPBACK)}};
    if (::connect(c.fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) return std::nullopt;
    c.backend = c.ask();
    if (c.backend.empty()) return std::nullopt;
    return c;
}

// Waits up to `limit` for the peer to end the connection; the time from opening to the
// reset, or nothing when it stayed open. `reset` says whether it was a reset (not a FIN).
std::optional<double> seconds_to_close(Conn& c, std::chrono::milliseconds limit, bool* reset) {
    pollfd p{c.fd.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) return std::nullopt;
    char byte;
    const ssize_t n = ::read(c.fd.get(), &byte, 1);
    *reset = n < 0 && errno == ECONNRESET;
    return std::chrono::duration<double>(Clock::now() - c.opened).count();
}

class CloseTest : public AgentTest, public ::testing::WithParamInterface<Path> {
   protected:
    // Starts the agent on tcp-echo (frontend 127.0.0.1:31400, 50/50) with `tcp` as
    // connectionPool.tcp, on the path the test forces.
    void start_with(const std::string& tcp) {
        std::ofstream(dir_ / "tcp-echo.yaml") << traffic_shift(
            "tcp-echo", R"(["127.0.0.1:31400"])", {{"v1", 50, {"127.0.0.1:9001"}}, {"v2", 50, {"127.0.0.1:9002"}}},
            "  policy:\n    connectionPool:\n      tcp: " + tcp + "\n");
        ForcedPath forced(GetParam());
        start_agent();
    }
};

// 2 s, plus 10% jitter, plus the sweep's 250 ms, plus a margin for a loaded machine.
constexpr double kBound = 2.0, kLatest = 2.0 * 1.1 + 0.25 + 0.5;

TEST_P(CloseTest, MaxConnectionDurationResetsEachConnectionWithinTheBoundAndJitter) {
    start_with("{maxConnectionDuration: 2s}");
    auto in = enter();
    std::vector<Conn> conns;
    for (int i = 0; i < 20; ++i) {
        auto c = open_conn(31400);
        ASSERT_TRUE(c) << "connection " << i;
        conns.push_back(std::move(*c));
    }
    // The control: a direct connection to a backend did not come through the frontend, so
    // the service's policy is not its own.
    auto direct = open_conn(9001);
    ASSERT_TRUE(direct);
    double earliest = 1e9, latest = 0;
    for (auto& c : conns) {
        bool reset = false;
        const auto closed = seconds_to_close(c, std::chrono::milliseconds(6000), &reset);
        ASSERT_TRUE(closed) << "still open after 6 s\n" << agent_log();
        EXPECT_TRUE(reset) << "closed without a reset";
        earliest = std::min(earliest, *closed);
        latest = std::max(latest, *closed);
    }
    std::cout << "[ figures ] " << GetParam().name << ": 20 connections closed " << earliest << "-" << latest
              << " s after opening (bound 2 s, +10% jitter, 250 ms sweep)\n";
    EXPECT_GE(earliest, kBound) << "closed before maxConnectionDuration";
    EXPECT_LE(latest, kLatest);
    EXPECT_EQ(direct->ask(), "one") << "the direct connection was closed";
    EXPECT_NE(agent_log().find("by " + GetParam().name), std::string::npos) << agent_log();
    // The agent logs a sweep's closes after it made them, so its line may follow the resets
    // the clients saw by a moment.
    EXPECT_TRUE(wait_for([&] { return agent_log().find("maxConnectionDuration 2 s") != std::string::npos; },
                         std::chrono::seconds(2)))
        << agent_log();
}

TEST_P(CloseTest, IdleTimeoutResetsTheIdleConnectionAndNotTheBusyOne) {
    start_with("{idleTimeout: 2s}");
    auto in = enter();
    auto idle = open_conn(31400), busy = open_conn(31400);
    ASSERT_TRUE(idle && busy);
    // The busy one talks every 250 ms for 5 s, past two idle timeouts.
    std::optional<double> idle_closed;
    bool reset = false;
    const auto until = Clock::now() + std::chrono::seconds(5);
    while (Clock::now() < until) {
        ASSERT_FALSE(busy->ask().empty()) << "the busy connection was closed\n" << agent_log();
        if (!idle_closed) idle_closed = seconds_to_close(*idle, std::chrono::milliseconds(250), &reset);
        else std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    ASSERT_TRUE(idle_closed) << "the idle connection stayed open 5 s\n" << agent_log();
    std::cout << "[ figures ] " << GetParam().name << ": idle connection closed " << *idle_closed
              << " s after its last reply (idleTimeout 2 s)\n";
    EXPECT_TRUE(reset);
    EXPECT_GE(*idle_closed, kBound);
    EXPECT_LE(*idle_closed, kLatest);
}

INSTANTIATE_TEST_SUITE_P(Paths, CloseTest, ::testing::Values(kProbed, kNetlink),
                         [](const auto& info) { return info.param.env.empty() ? "Probed" : "Netlink"; });

// Long-lived clients: each keeps one connection, asking every 200 ms, and reconnects at once
// when it is reset, counting the resets by the backend that had the connection.
class LongLivedClients {
   public:
    LongLivedClients(ScopedNetns& /*entered*/, size_t n) : now_on_(n) {
        for (size_t i = 0; i < n; ++i) threads_.emplace_back([this, i] { run(i); });
    }
    ~LongLivedClients() { stop(); }
    void stop() {
        stop_ = true;
        for (auto& t : threads_)
            if (t.joinable()) t.join();
    }
    size_t on(const std::string& backend) {
        std::lock_guard lock(mutex_);
        return static_cast<size_t>(std::count(now_on_.begin(), now_on_.end(), backend));
    }
    std::atomic<size_t> resets_one{0}, resets_two{0}, failures{0};

   private:
    void run(size_t i) {
        while (!stop_) {
            auto c = open_conn(31400);
            if (!c) {
                ++failures;
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
                continue;
            }
            set(i, c->backend);
            while (!stop_) {
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
                if (c->ask().empty()) {
                    ++(c->backend == "one" ? resets_one : resets_two);
                    set(i, "");
                    break;
                }
            }
        }
    }
    void set(size_t i, const std::string& backend) {
        std::lock_guard lock(mutex_);
        now_on_[i] = backend;
    }

    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::vector<std::string> now_on_;
    std::vector<std::thread> threads_;
};

class RebalanceTest : public SteeringTest, public ::testing::WithParamInterface<Path> {};

TEST_P(RebalanceTest, ClosesTheExcessOfV1OnlyAndConvergesWithinTheBudget) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    const auto shift = [](int w1, int w2) {
        return traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                             {{"v1", w1, {"127.0.0.1:9001"}}, {"v2", w2, {"127.0.0.1:9002"}}});
    };
    apply(shift(100, 0));
    constexpr size_t kClients = 100;
    auto in = enter();
    LongLivedClients clients(in, kClients);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (clients.on("one") < kClients && Clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_EQ(clients.on("one"), kClients);

    ForcedPath forced(GetParam());
    auto set = tcpshift_here({"set", "tcp-echo", "v1=50", "v2=50"});
    ASSERT_EQ(set.exit_code, 0) << set.err;
    EXPECT_EQ(clients.on("one"), kClients) << "set alone moves no established connection";
    auto r = tcpshift_here({"rebalance", "tcp-echo", "--rate", "100/s", "--max", "300", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto report = nlohmann::json::parse(r.out);
    const size_t closed = report["closed"];
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the last ones reconnect
    const size_t on_one = clients.on("one"), on_two = clients.on("two");
    clients.stop();
    std::cout << "[ figures ] " << GetParam().name << ": " << kClients << " connections all on v1, set 50/50: closed "
              << closed << " in " << report["seconds"].get<double>() << " s (" << report["rounds"] << " rounds); now v1 "
              << on_one << ", v2 " << on_two << "; client-side resets: v1 " << clients.resets_one << ", v2 "
              << clients.resets_two << ", failed connects " << clients.failures << "\n";
    EXPECT_EQ(report["destroy_path"], GetParam().name);
    EXPECT_TRUE(report["converged"].get<bool>()) << r.out;
    EXPECT_EQ(clients.resets_two, 0u) << "a connection on v2, under its share, was closed";
    EXPECT_EQ(clients.failures, 0u);
    EXPECT_EQ(clients.resets_one, closed) << "every close is one client's reset";
    // The excess is 50; the reconnects split 50/50 again, so about twice that converges.
    EXPECT_GE(closed, 50u);
    EXPECT_LE(closed, 300u) << "--max";
    // Rebalance ends once the reset clients are back; a straggler may land either way.
    EXPECT_LE(on_one, kClients / 2 + 2) << "v1 still holds more than its share";
    EXPECT_GE(on_two, kClients / 2 - 2);
    // The rate: at most 100 a second, and one round's allowance (15) at once.
    EXPECT_LE(static_cast<double>(closed), 100 * report["seconds"].get<double>() + 15) << "closed faster than --rate";
}

// spec.rebalance: `set` alone moves the long-lived connections to the new weights.
TEST_P(RebalanceTest, SetRebalancesAServiceWhosePolicyAsksForIt) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                        {{"v1", 100, {"127.0.0.1:9001"}}, {"v2", 0, {"127.0.0.1:9002"}}},
                        "  rebalance: {rate: 200, max: 150}\n"));
    constexpr size_t kClients = 40;
    auto in = enter();
    LongLivedClients clients(in, kClients);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (clients.on("one") < kClients && Clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_EQ(clients.on("one"), kClients);
    ForcedPath forced(GetParam());
    auto set = tcpshift_here({"set", "tcp-echo", "v1=25", "v2=75"});
    ASSERT_EQ(set.exit_code, 0) << set.err;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const size_t on_one = clients.on("one"), on_two = clients.on("two");
    clients.stop();
    std::cout << "[ figures ] " << GetParam().name << ": set 25/75 with spec.rebalance, " << kClients
              << " connections: now v1 " << on_one << ", v2 " << on_two << "; resets v1 " << clients.resets_one
              << ", v2 " << clients.resets_two << "\n";
    EXPECT_NE(set.out.find("no backend is above its share"), std::string::npos) << set.out;
    EXPECT_NE(set.out.find("by " + GetParam().name), std::string::npos) << set.out;
    EXPECT_EQ(clients.resets_two, 0u);
    EXPECT_EQ(clients.failures, 0u);
    EXPECT_LE(on_one, kClients / 4 + 2);
    EXPECT_GE(on_two, kClients * 3 / 4 - 2);
}

INSTANTIATE_TEST_SUITE_P(Paths, RebalanceTest, ::testing::Values(kProbed, kNetlink),
                         [](const auto& info) { return info.param.env.empty() ? "Probed" : "Netlink"; });

}  // namespace
}  // namespace tcpshift::testing
