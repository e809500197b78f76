// The agent tests' fixture: an agent serving a directory of config in the test's namespace,
// two tcp-echo backends, and what the tests read from it (metrics, its log, the split).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "netns_fixture.h"

namespace tcpshift::testing {

inline const std::string kWeightV1 = R"(tcpshift_weight{service="tcp-echo",subset="v1"})";
inline const std::string kReloadOk = R"(tcpshift_config_reloads_total{result="success"})";
inline const std::string kReloadError = R"(tcpshift_config_reloads_total{result="error"})";
inline const std::string kReadyV2 = R"(tcpshift_backend_ready{service="tcp-echo",subset="v2",backend="127.0.0.1:9002"})";

// Writes a file the way editors and config management do: a temporary file renamed over it.
void replace_file(const std::filesystem::path& path, const std::string& text);

// Runs echo clients against 127.0.0.1:31400 in the namespace until stopped, counting every
// failure.
class Load {
   public:
    explicit Load(const std::string& netns);
    ~Load() { stop(); }
    Load(const Load&) = delete;
    Load& operator=(const Load&) = delete;

    void stop();
    uint64_t ok() const { return ok_; }
    uint64_t failed() const { return failed_; }
    const std::string& first_error() const { return first_error_; }

   private:
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> ok_{0}, failed_{0};
    std::string first_error_;
    std::thread thread_;
};

class AgentTest : public NetnsTest {
   protected:
    void SetUp() override;
    void TearDown() override;

    // Starts the agent on dir_ with metrics on a free port; asserts it answers /healthz.
    void start_agent(const std::vector<std::string>& extra = {});
    std::string metrics();
    double metric(const std::string& series);
    std::string agent_log();
    // 2000 connections to the frontend, all served and split w1/w2 by chi-square.
    void expect_split(double w1, double w2);

    // Polls `condition` every 50 ms until it holds or `limit` has passed.
    template <typename F>
    bool wait_for(F condition, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            if (condition()) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }

    std::filesystem::path dir_;
    std::string log_;
    int port_ = 0;
    Child v1_, v2_, agent_;
};

}  // namespace tcpshift::testing
