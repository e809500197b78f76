// One throwaway network namespace per privileged test.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "process.h"
#include "base/netns.h"

namespace tcpshift::testing {

// Privileged tests skip with the reason when not root, and fail under CI, where root is given.
bool privileged_or_skip(std::string* why);
#define TCPSHIFT_REQUIRE_ROOT()                                                          \
    do {                                                                                 \
        std::string why_;                                                                \
        if (!::tcpshift::testing::privileged_or_skip(&why_)) {                           \
            if (std::getenv("CI") != nullptr && std::string(std::getenv("CI")) == "true") \
                FAIL() << why_ << " (under CI a privileged test must run)";              \
            GTEST_SKIP() << why_;                                                        \
        }                                                                                \
    } while (0)

// Creates `ip netns add NAME` with lo up; on destruction detaches tcpshift from it and
// deletes it.
class TestNetns {
   public:
    TestNetns();
    ~TestNetns();
    TestNetns(const TestNetns&) = delete;
    TestNetns& operator=(const TestNetns&) = delete;

    const std::string& name() const { return name_; }
    bool ok() const { return ok_; }

   private:
    std::string name_;
    bool ok_ = false;
};

// Writes text to a fresh file under the test's temporary directory and returns its path.
std::string write_temp_file(const std::string& name, const std::string& text);

// The two-subset tcp-echo service most e2e tests use: frontend 127.0.0.1:31400, v1 at
// 127.0.0.1:9001 and v2 at 127.0.0.1:9002.
std::string tcp_echo_config(int v1_weight, int v2_weight);

// Starts `tcpshift agent --config DIR --netns NETNS` with metrics on 127.0.0.1:port and stderr
// into `log`, and waits up to 10 s for /healthz to answer 200 (`healthy` says whether it did).
// `wrapper` runs it (setpriv with a capability set).
Child start_agent(const std::string& netns, const std::string& config_dir, int port, const std::string& log,
                  const std::vector<std::string>& extra, bool* healthy, const std::vector<std::string>& wrapper = {});

// The base of e2e tests: a namespace per test, and helpers that run tcpshift against it.
class NetnsTest : public ::testing::Test {
   protected:
    void SetUp() override;
    void TearDown() override;

    const std::string& netns() const { return ns_->name(); }
    // `tcpshift ARGS --netns NAME`
    CommandResult tcpshift_here(std::vector<std::string> args);
    // Applies YAML text; asserts success.
    void apply(const std::string& yaml);
    // Enters the namespace on this thread for clients; leaves it when the scope ends.
    ScopedNetns enter();
    // The namespace's inode, which names its pin and state directories.
    uint64_t netns_inode();

   private:
    std::unique_ptr<TestNetns> ns_;
};

}  // namespace tcpshift::testing

namespace tcpshift::testing {

// Another namespace on the same host with tcpshift attached, the same frontend and backend
// ports as the tests (0.0.0.0:31400 over 127.0.0.1:9001 and 9002), and a client keeping it
// busy (about 50 connections a second) for as long as the tests run. At the end its own
// accounting must be exact: every reply its client got is one connection opened there, no
// more (nothing of the tests' namespaces counted) and no failure.
class NeighbourNamespace : public ::testing::Environment {
   public:
    void SetUp() override;
    void TearDown() override;

   private:
    std::unique_ptr<TestNetns> ns_;
    std::vector<Child> backends_;
    std::thread client_;
    std::atomic<bool> stop_{false};
    uint64_t replies_ = 0;
    uint64_t failures_ = 0;
    std::string first_error_;
};

}  // namespace tcpshift::testing
