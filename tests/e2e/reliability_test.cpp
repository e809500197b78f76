// Faults under load, with tcpshift-loadgen counting every failure exactly. Each scenario is
// bounded in time and runs in its own network namespace.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "client.h"
#include "netns_fixture.h"

namespace tcpshift::testing {
namespace {

std::string config(int v1, int v2) {
    return "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: tcp-echo}\nspec:\n"
           "  listen: [\"127.0.0.1:31400\"]\n  subsets:\n"
           "  - {name: v1, weight: " + std::to_string(v1) + ", backends: [\"127.0.0.1:9001\"]}\n"
           "  - {name: v2, weight: " + std::to_string(v2) + ", backends: [\"127.0.0.1:9002\"]}\n";
}

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
    Child v1_, v2_;
};

TEST_F(ReliabilityTest, ShiftingWeightsUnderLoadFailsNothingAndMovesNoEstablishedConnection) {
    apply(config(0, 100));
    LoadRun load(netns(), {"--concurrency", "4", "--duration-ms", "4500", "--long-lived", "50", "--interval-ms", "100"});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (int v1 = 10; v1 <= 100; v1 += 10) {
        const auto r = tcpshift_here({"set", "tcp-echo", "v1=" + std::to_string(v1), "v2=" + std::to_string(100 - v1)});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    const auto s = load.summary();
    ASSERT_TRUE(s.is_object());
    EXPECT_GT(s["ok"].get<uint64_t>(), 1000u) << s.dump();
    EXPECT_EQ(s["failed"].get<uint64_t>(), 0u) << s.dump();
    EXPECT_GT(s["by_reply"].value("one", 0u), 0u) << "the shift reached v1: " << s.dump();
    EXPECT_GT(s["by_reply"].value("two", 0u), 0u) << s.dump();
    const auto& kept = s["long_lived"];
    EXPECT_EQ(kept["opened"].get<uint64_t>(), 50u) << s.dump();
    EXPECT_EQ(kept["failed"].get<uint64_t>(), 0u) << s.dump();
    EXPECT_EQ(kept["moved"].get<uint64_t>(), 0u) << "established connections stay on their backend: " << s.dump();
    EXPECT_GT(kept["echoes"].get<uint64_t>(), 50u * 30) << s.dump();
}

TEST_F(ReliabilityTest, DetachUnderLoadServesOrRefusesNeverHangsAndLeavesNothing) {
    apply(config(50, 50));
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
    EXPECT_GT(s["failures"].value("refused", 0u), 0u) << s.dump();
    EXPECT_FALSE(std::filesystem::exists("/sys/fs/bpf/tcpshift/" + std::to_string([&] {
                                             auto in = enter();
                                             return current_netns()->inode;
                                         }())));
}

}  // namespace
}  // namespace tcpshift::testing
