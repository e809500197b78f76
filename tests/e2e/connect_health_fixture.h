// The health tests' fixture: a node of pods with three tcp-echo backends v1, v2 and v3
// (10.244.0.11-13:9000, replying "v1 ...", "v2 ...", "v3 ...") behind the virtual address
// 10.96.0.50:9000 at 20/30/50, a client pod in the test cgroup that tcpshift is attached to,
// and what the tests read: load rounds, the split, the status of a backend.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "netns_fixture.h"
#include "pod_fixture.h"

namespace tcpshift::testing {

inline constexpr const char* kFrontend = "10.96.0.50:9000";
inline constexpr uint32_t kConsecutiveErrors = 3;
inline constexpr std::chrono::milliseconds kBaseEjection{5000};
inline constexpr unsigned kConcurrency = 4;

// The failed connections a backend's death may cost at most, kConsecutiveErrors before it is
// ejected, plus those under way then (README: "Health of connect-time backends"): the failures
// that eject it, the other clients' connections already sent to it when it was ejected, and
// one exchange per client that it had accepted before it died.
inline constexpr uint64_t kFailureBound = kConsecutiveErrors + (kConcurrency - 1) + kConcurrency;

// The service as a native TrafficShift and in Istio's mesh form, both with outlier detection
// of kConsecutiveErrors failures and a base ejection of kBaseEjection.
std::string native_config();
std::string mesh_config();

class ConnectHealthTest : public ::testing::Test {
   protected:
    void SetUp() override;
    void TearDown() override;

    // `tcpshift ARGS --netns NODE`.
    CommandResult tcpshift_on_node(std::vector<std::string> args);
    void apply(const std::string& yaml);
    // Starts backend `i` (0: v1, 1: v2, 2: v3) again on its address.
    void start_backend(size_t i);
    // Short connections to the frontend from the client pod for `duration`, with kConcurrency
    // clients, each connect and read bounded by `timeout`.
    nlohmann::json load(std::chrono::milliseconds duration, std::chrono::milliseconds timeout);
    // The same, `connections` of them, however long they take.
    nlohmann::json load_n(uint64_t connections);
    // Asserts no failure and a split of the replies by `weights` (v1, v2, v3; 0: none at all)
    // by chi-square at kAlpha.
    void expect_split(const nlohmann::json& summary, const std::vector<double>& weights);
    // The `status --json` entry of backend v`n`'s address.
    nlohmann::json backend_status(int n);

    // Polls `condition` every 20 ms until it holds or `limit` has passed; returns how long it
    // took, or nothing.
    template <typename F>
    std::optional<std::chrono::milliseconds> time_until(F condition, std::chrono::milliseconds limit) {
        const auto start = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() - start < limit) {
            if (condition())
                return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return std::nullopt;
    }

    std::unique_ptr<PodNode> node_;
    std::unique_ptr<TestCgroup> cgroup_;
    std::vector<Pod> pods_;  // v1, v2, v3
    Pod client_;
    std::vector<Child> backends_;  // v1, v2, v3
    Child agent_;
    bool attached_ = false;
};

}  // namespace tcpshift::testing
