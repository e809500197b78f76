// The connect-time tests' node: a simulated Kubernetes node (tests/support/pod_fixture.h) with
// tcp-echo pods v1 and v2, a client pod, and tcpshift attached with its cgroup programs to a
// cgroup the test made. Helpers apply YAML to the node, run the load generator from a pod in
// the cgroup, and read what tcpshift counted.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "netns_fixture.h"
#include "pod_fixture.h"

namespace tcpshift::testing {

inline constexpr uint16_t kEchoPort = 9000;
// The virtual address clients call: a Service's clusterIP, held by no interface anywhere.
inline constexpr const char* kFrontendV4 = "10.96.0.50:9000";
inline constexpr const char* kFrontendV6 = "[fd00:96::50]:9000";
// The client pod's index on the bridge: 10.244.0.100, fd00:244::100.
inline constexpr int kClientIndex = 100;

// A backend pod: its name (the namespace's suffix), its index on the bridge, and the word
// its tcpshift-echo answers with, on port 9000 of both its addresses.
struct BackendPodSpec {
    std::string name;
    int index = 0;
    std::string word;
};

// The tcp-echo pods of the mesh task: v1 at 10.244.0.11 answering "one", v2 at 10.244.0.12
// answering "two".
std::vector<BackendPodSpec> tcp_echo_pods();

// One subset of a native TrafficShift.
struct ShiftSubset {
    std::string name;
    int weight = 0;
    std::vector<std::string> backends;  // "10.244.0.11:9000", "[fd00:244::11]:9000"
};

// A TrafficShift named `name` listening on `listen`, with `affinity` ("none" or "source-ip").
std::string traffic_shift(const std::string& name, const std::vector<std::string>& listen,
                          const std::vector<ShiftSubset>& subsets, const std::string& affinity = "none");

// One node with tcpshift attached: `tcpshift attach --netns NODE --cgroup CG`, with a cgroup
// of its own. The constructor builds everything and starts the echo servers; ok() says
// whether all of it worked. The destructor detaches (when attached) and stops the servers
// before the namespaces go.
class AttachedNode {
 public:
    explicit AttachedNode(const std::vector<BackendPodSpec>& backends);
    ~AttachedNode();
    AttachedNode(const AttachedNode&) = delete;
    AttachedNode& operator=(const AttachedNode&) = delete;

    bool ok() const { return error_.empty() && pods_.ok() && cgroup_.ok(); }
    std::string error() const;

    PodNode& pods() { return pods_; }
    const std::string& netns() const { return pods_.netns(); }
    const TestCgroup& cgroup() const { return cgroup_; }
    const Pod& backend(size_t i) const { return backends_.at(i); }
    const Pod& client() const { return client_; }

    // `tcpshift ARGS --netns NODE`.
    CommandResult tcpshift_node(std::vector<std::string> args) const;
    // Applies YAML text to the node; a failure is a test failure.
    void apply(const std::string& yaml) const;
    // `tcpshift stats --json` of the node; an empty object (and a test failure) when it fails.
    nlohmann::json stats() const;
    // `tcpshift detach --netns NODE`; true when it succeeded. Done once.
    bool detach();

    // Runs the load generator from `from` (default: the client pod) inside the cgroup.
    nlohmann::json load(const LoadOptions& options, const Pod* from = nullptr) const;
    nlohmann::json load(const std::string& target, uint64_t connections, const Pod* from = nullptr) const {
        return load({.target = target, .connections = connections}, from);
    }

 private:
    PodNode pods_;
    TestCgroup cgroup_;
    std::vector<Pod> backends_;
    Pod client_;
    std::vector<Child> servers_;
    std::string error_;
    bool attached_ = false;
};

// A few connections to `target`, each bounded to 500 ms, all answered: a test asserts this
// before a large load, so that a frontend nothing serves fails fast instead of timing out
// thousands of times.
bool answers(const AttachedNode& node, const std::string& target, const Pod* from = nullptr);

// The replies a load generator summary tallied for `word`.
uint64_t replies(const nlohmann::json& summary, const std::string& word);
// Every one of `connections` answered, none failed.
void expect_all_answered(const nlohmann::json& summary, uint64_t connections);
// The replies split by `weights` over `words`, judged by chi-square at kAlpha; a word of
// weight 0 got nothing, and no word outside `words` answered.
void expect_split(const nlohmann::json& summary, const std::vector<std::string>& words,
                  const std::vector<double>& weights);

// Connections opened per backend address, over every service ("backends" of stats --json).
std::map<std::string, uint64_t> opened_by_backend(const nlohmann::json& stats);
// Connect-time rewrites over every service.
uint64_t connect_rewrites(const nlohmann::json& stats);
// Between two stats, each backend address opened exactly as many connections as its word
// got replies in `summary`; `word_of` maps addresses to words.
void expect_opened_match_replies(const nlohmann::json& before, const nlohmann::json& after,
                                 const std::map<std::string, std::string>& word_of, const nlohmann::json& summary);

// The base of the connect-time tests: an AttachedNode with the tcp-echo pods, made in SetUp
// (which skips without root) and detached in TearDown.
class ConnectTest : public ::testing::Test {
 protected:
    void SetUp() override;
    void TearDown() override;

    AttachedNode& node() { return *node_; }

 private:
    std::unique_ptr<AttachedNode> node_;
};

}  // namespace tcpshift::testing
