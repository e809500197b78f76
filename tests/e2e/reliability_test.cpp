// Faults under load, with tcpshift-loadgen counting every failure exactly. Each scenario is
// bounded in time and runs in its own network namespace.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <mutex>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "client.h"
#include "netns_fixture.h"
#include "stats.h"

namespace tcpshift::testing {
namespace {

namespace fs = std::filesystem;

// Runs the load generator in a thread; summary() waits for it and parses its JSON.
class LoadRun {
   public:
    LoadRun(const std::string& netns, std::vector<std::string> args) {
        std::vector<std::string> argv{TCPSHIFT_LOADGEN_BIN, "--netns", netns, "--target", "127.0.0.1:31400"};
        argv.insert(argv.end(), args.begin(), args.end());
        thread_ = std::thread([this, argv] { result_ = run_command(argv); });
    }
    ~LoadRun() {
        if (thread_.joinable()) thread_.join();
    }
    nlohmann::json summary() {
        thread_.join();
        EXPECT_EQ(result_.exit_code, 0) << result_.err;
        // The figures tests/RELIABILITY.md records.
        std::cout << "[ loadgen  ] " << ::testing::UnitTest::GetInstance()->current_test_info()->name() << " "
                  << result_.out;
        return nlohmann::json::parse(result_.out, nullptr, false);
    }

   private:
    std::thread thread_;
    CommandResult result_;
};

class ReliabilityTest : public NetnsTest {
   protected:
    void SetUp() override {
        NetnsTest::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        v1_ = start_echo(netns(), "127.0.0.1:9001", "one");
        v2_ = start_echo(netns(), "127.0.0.1:9002", "two");
    }

    // 2000 new connections to the frontend, all served and split 50/50 by chi-square; `why`
    // says what the split shows.
    void expect_fifty_fifty(const std::string& why) {
        auto in = enter();
        const Tally t = tally(endpoint("127.0.0.1:31400"), 2000);
        EXPECT_EQ(t.failures, 0u) << t.str();
        const SplitVerdict v = chi_square_split({t["one"], t["two"]}, {50, 50});
        EXPECT_GE(v.p_value, kAlpha) << why << ": " << t.str() << "\n" << v.table;
    }

    // Sets v1/(100 - v1) and judges the split of new connections from many sources by it, one
    // step of the sweep; their replies are added to `mine`.
    void expect_step_split(int v1, Tally* mine);

    Child v1_, v2_;
};

// Connections opened per subset, as `tcpshift stats --json` counts them at establishment.
std::map<std::string, uint64_t> opened_by_subset(const std::string& stats_json) {
    std::map<std::string, uint64_t> opened;
    const auto j = nlohmann::json::parse(stats_json);
    for (const auto& subset : j["services"][0]["subsets"])
        for (const auto& b : subset["backends"])
            opened[subset["name"].get<std::string>()] += b["opened"].get<uint64_t>();
    return opened;
}

// The sweep's long-lived connections, all opened on v2 before its first step, and its steps.
constexpr unsigned kLongLived = 50;
constexpr int kSteps = 10;

void ReliabilityTest::expect_step_split(int v1, Tally* mine) {
    const auto r = tcpshift_here({"set", "tcp-echo", "v1=" + std::to_string(v1), "v2=" + std::to_string(100 - v1)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::vector<double> weights{static_cast<double>(v1), static_cast<double>(100 - v1)};
    // Enough to see a 5-point deviation; the last step has one category, and 500
    // connections that must all reach v1.
    const size_t n = v1 == 100 ? 500 : sample_size_for(weights, 0.05);
    Tally t;
    {
        auto in = enter();
        t = tally_from_many_sources(endpoint("127.0.0.1:31400"), n);
    }
    EXPECT_EQ(t.failures, 0u) << "v1=" << v1 << ": " << t.str();
    EXPECT_EQ(t["one"] + t["two"], n) << "v1=" << v1 << ": " << t.str();
    // Ten judgements: each at kAlpha / kSteps keeps the chance of a false alarm in the
    // whole sweep at kAlpha.
    const SplitVerdict v = chi_square_split({t["one"], t["two"]}, weights);
    EXPECT_GE(v.p_value, kAlpha / kSteps) << "step v1=" << v1 << " v2=" << 100 - v1 << ": " << t.str() << "\n"
                                          << v.table;
    if (v1 == 100) {
        EXPECT_EQ(t["two"], 0u) << "v2 has weight 0: " << t.str();
    }
    for (const auto& [prefix, count] : t.by_prefix) mine->by_prefix[prefix] += count;
    mine->failures += t.failures;
}

// The load generator's summary of the sweep: served throughout, on both backends, and its
// long-lived connections all kept, none moved, each echoing again and again.
void expect_load_served_and_long_lived_kept(const nlohmann::json& s) {
    // The steps' own connections compete with the load for the CPU: an emulated guest does
    // about 900 here, the host tens of thousands.
    EXPECT_GT(s["ok"].get<uint64_t>(), 500u) << s.dump();
    EXPECT_EQ(s["failed"].get<uint64_t>(), 0u) << s.dump();
    EXPECT_GT(s["by_reply"].value("one", 0u), 0u) << "the shift reached v1: " << s.dump();
    EXPECT_GT(s["by_reply"].value("two", 0u), 0u) << s.dump();
    const auto& kept = s["long_lived"];
    EXPECT_EQ(kept["opened"].get<uint64_t>(), kLongLived) << s.dump();
    EXPECT_EQ(kept["failed"].get<uint64_t>(), 0u) << s.dump();
    // A kernel socket cannot change its peer, so this holds by construction; it guards the
    // load generator's bookkeeping, which the counts below rely on.
    EXPECT_EQ(kept["moved"].get<uint64_t>(), 0u) << "established connections stay on their backend: " << s.dump();
    // Each kept connection echoed again and again across the steps (at least 5 rounds of all
    // 50, even on an emulated guest).
    EXPECT_GE(kept["echoes"].get<uint64_t>(), kLongLived * 5) << s.dump();
}

// Exact accounting while the weights moved: every connection opened is one reply, at the
// backend that sent it, whether the load generator's (`s`) or the sweep's (`mine`).
void expect_every_connection_counted(const CommandResult& stats, const nlohmann::json& s, const Tally& mine) {
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    auto opened = opened_by_subset(stats.out);
    const uint64_t loadgen_one = s["by_reply"].value("one", 0u), loadgen_two = s["by_reply"].value("two", 0u);
    EXPECT_EQ(opened["v1"], loadgen_one + mine["one"])
        << "loadgen " << loadgen_one << " + sweep " << mine["one"] << "\n"
        << stats.out;
    EXPECT_EQ(opened["v2"], loadgen_two + kLongLived + mine["two"])
        << "loadgen " << loadgen_two << " + long-lived " << kLongLived << " + sweep " << mine["two"] << "\n"
        << stats.out;
    const auto j = nlohmann::json::parse(stats.out);
    EXPECT_EQ(j["services"][0]["lookups"].get<uint64_t>(),
              loadgen_one + loadgen_two + kLongLived + mine["one"] + mine["two"])
        << stats.out;
    EXPECT_EQ(j["services"][0]["refused"].get<uint64_t>(), 0u) << stats.out;
}

// A sweep from 0/100 to 100/0 in steps of 10 under load: at each step the new connections
// split by that step's weights, and at the end every connection is counted at the backend
// that answered it, while weights moved under it.
TEST_F(ReliabilityTest, ShiftingWeightsUnderLoadFailsNothingAndMovesNoEstablishedConnection) {
    apply(tcp_echo_config(0, 100));
    LoadRun load(netns(), {"--concurrency", "2", "--duration-ms", "6500", "--long-lived", std::to_string(kLongLived),
                           "--interval-ms", "100"});
    // The load generator opens its long-lived connections before any short one, so once v2
    // counts more than those, all of them are open, on v2, before the first step.
    uint64_t started = 0;
    for (int i = 0; i < 250 && (started = opened_by_subset(tcpshift_here({"stats", "--json"}).out)["v2"]) <= kLongLived;
         ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_GT(started, kLongLived) << "the load generator did not start within 5 s";
    Tally mine;  // every step's replies
    for (int step = 1; step <= kSteps; ++step) {
        ASSERT_NO_FATAL_FAILURE(expect_step_split(step * 10, &mine));
    }
    const auto s = load.summary();
    ASSERT_TRUE(s.is_object());
    expect_load_served_and_long_lived_kept(s);
    expect_every_connection_counted(tcpshift_here({"stats", "--json"}), s, mine);
}

TEST_F(ReliabilityTest, ABackendCrashFailsOnlyItsInFlightConnectionsAndItComesBack) {
    apply(tcp_echo_config(50, 50));
    constexpr int kClients = 4;
    LoadRun load(netns(), {"--concurrency", std::to_string(kClients), "--duration-ms", "3000", "--timeout-ms", "1000"});
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    v2_.stop(SIGKILL);
    {
        // From the next lookup on, new connections go to v1.
        auto in = enter();
        const Tally t = tally(endpoint("127.0.0.1:31400"), 200);
        EXPECT_EQ(t.failures, 0u) << t.str();
        EXPECT_EQ(t["one"], 200u) << t.str();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    v2_ = start_echo(netns(), "127.0.0.1:9002", "two");  // back, with no tcpshift command
    const auto s = load.summary();
    ASSERT_TRUE(s.is_object());
    // Only connections already handed to v2 when it died can fail, and a dead listener resets
    // its queue at once, so none times out. Each client has one connection in flight; the
    // kernel releases a dying process's accepted sockets before its listener, so a client may
    // also lose the retry it made into the listener's queue in between: at most two each, far
    // below the backlog (4096) that bounds what a listener can hold.
    EXPECT_LE(s["failed"].get<uint64_t>(), 2u * kClients) << s.dump();
    EXPECT_EQ(s["failures"].value("timeout", 0u), 0u) << s.dump();
    expect_fifty_fifty("v2 takes its share again");
}

// A backend hands over to its successor through SO_REUSEPORT: the new process listens, then
// the old one stops listening and drains. With net.ipv4.tcp_migrate_req=1 the kernel moves
// connections queued on the old listener to the new one, so nothing fails.
TEST_F(ReliabilityTest, AGracefulReuseportHandoverFailsNothing) {
    ASSERT_EQ(run_command({"/sbin/ip", "netns", "exec", netns(), "/sbin/sysctl", "-q", "-w",
                           "net.ipv4.tcp_migrate_req=1"})
                  .exit_code,
              0);
    v2_.stop(SIGKILL);
    v2_ = start_echo(netns(), "127.0.0.1:9002", "two", {"--reuseport"});
    apply(tcp_echo_config(50, 50));
    LoadRun load(netns(), {"--concurrency", "4", "--duration-ms", "2500", "--long-lived", "10"});
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    Child successor = start_echo(netns(), "127.0.0.1:9002", "two", {"--reuseport"});
    ASSERT_FALSE(successor.first_line().empty());
    const int status = v2_.stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status)) << "the old backend drains and exits";
    const auto s = load.summary();
    ASSERT_TRUE(s.is_object());
    EXPECT_EQ(s["failed"].get<uint64_t>(), 0u) << s.dump();
    expect_fifty_fifty("the successor takes v2's share");
}

// Two writers loop `tcpshift set --force` while the agent reloads its edited file and load
// runs: each writer waits for the lock or fails with a clear message, no connection fails,
// the agent's reloads all succeed, and once the agent has reloaded the maps are in sync with
// the stored state and the agent's file.
TEST_F(ReliabilityTest, ConcurrentWritersAndAgentReloadsSerialiseAndLeaveTheMapsInSync) {
    const fs::path dir = fs::path(write_temp_file("writers", "")).parent_path() / ("writers-" + netns());
    fs::create_directories(dir);
    std::ofstream(dir / "tcp-echo.yaml") << tcp_echo_config(50, 50);
    const int port = free_port();
    bool healthy = false;
    Child agent = start_agent(netns(), dir.string(), port, (dir / "agent.log").string(), {}, &healthy);
    ASSERT_TRUE(healthy);

    LoadRun load(netns(), {"--concurrency", "2", "--duration-ms", "3000"});
    std::atomic<int> ok{0}, busy{0}, other{0};
    std::string unexpected;
    std::mutex unexpected_mutex;
    auto writer = [&](int offset) {
        for (int i = 0; i < 15; ++i) {
            const int v1 = (i * 7 + offset) % 101;
            const auto r = tcpshift_here(
                {"set", "tcp-echo", "v1=" + std::to_string(v1), "v2=" + std::to_string(101 - v1), "--force"});
            if (r.exit_code == 0) {
                ++ok;
            } else if (r.exit_code == 1 && r.err.find("another tcpshift writer held it") != std::string::npos) {
                ++busy;
            } else {
                ++other;
                std::lock_guard lock(unexpected_mutex);
                unexpected = r.err;
            }
        }
    };
    std::thread editor([&] {
        for (int i = 0; i < 8; ++i) {
            std::ofstream(dir / "next.tmp") << tcp_echo_config(10 * i, 100 - 10 * i + 1);
            fs::rename(dir / "next.tmp", dir / "tcp-echo.yaml");
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
        }
    });
    std::thread a(writer, 0), b(writer, 50);
    a.join();
    b.join();
    editor.join();
    const auto s = load.summary();
    EXPECT_EQ(other.load(), 0) << unexpected;
    EXPECT_EQ(ok.load() + busy.load(), 30);
    EXPECT_GT(ok.load(), 0);
    ASSERT_TRUE(s.is_object());
    EXPECT_EQ(s["failed"].get<uint64_t>(), 0u) << s.dump();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the last debounced reload
    const std::string kReloadOk = R"(tcpshift_config_reloads_total{result="success"})";
    const std::string metrics = http_get(port, "/metrics").body;
    EXPECT_GE(metric_value(metrics, kReloadOk), 2) << metrics;
    EXPECT_EQ(metric_value(metrics, R"(tcpshift_config_reloads_total{result="error"})"), 0) << metrics;
    // A forced set lasts until the agent's next reload, which restores its file.
    const double reloads = metric_value(metrics, kReloadOk);
    ::kill(agent.pid(), SIGHUP);
    for (int i = 0; i < 100 && metric_value(http_get(port, "/metrics").body, kReloadOk) == reloads; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    agent.stop(SIGKILL);
}

TEST_F(ReliabilityTest, DetachUnderLoadServesOrRefusesNeverHangsAndLeavesNothing) {
    apply(tcp_echo_config(50, 50));
    LoadRun load(netns(), {"--concurrency", "4", "--duration-ms", "2000", "--timeout-ms", "1500"});
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    const auto r = tcpshift_here({"detach"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto s = load.summary();
    ASSERT_TRUE(s.is_object());
    EXPECT_GT(s["ok"].get<uint64_t>(), 0u) << s.dump();
    // After detach nothing listens on 31400: connections are refused at once, none times out.
    EXPECT_EQ(s["failures"].value("timeout", 0u), 0u) << s.dump();
    EXPECT_EQ(s["failed"].get<uint64_t>(), s["failures"].value("refused", 0u)) << s.dump();
    // Once detach has returned, every new connection is refused at once, however long the
    // detach took (an emulated guest can take longer than the whole first run).
    LoadRun after(netns(), {"--concurrency", "4", "--duration-ms", "300", "--timeout-ms", "1500"});
    const auto a = after.summary();
    ASSERT_TRUE(a.is_object());
    EXPECT_EQ(a["ok"].get<uint64_t>(), 0u) << a.dump();
    EXPECT_EQ(a["failed"].get<uint64_t>(), a["failures"].value("refused", 0u)) << a.dump();
    EXPECT_GT(a["failures"].value("refused", 0u), 0u) << a.dump();
    EXPECT_FALSE(std::filesystem::exists("/sys/fs/bpf/tcpshift/" + std::to_string(netns_inode())));
}

}  // namespace
}  // namespace tcpshift::testing
