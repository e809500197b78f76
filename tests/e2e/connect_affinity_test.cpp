// Source-ip affinity at connect time: at connect() the source address may not be bound yet,
// so the draw hashes the client's network namespace cookie. Every connection of one client
// pod goes to one backend, and client pods spread over both.
#include <gtest/gtest.h>

#include <algorithm>

#include "connect_fixture.h"

namespace tcpshift::testing {
namespace {

// With 50/50 and this many pods, all on one backend happens by chance with probability
// 2^-(kClientPods-1), about 1 in 16000.
constexpr int kClientPods = 15;
constexpr uint64_t kPerPod = 40;

const std::string kMeshAffinity = R"(apiVersion: v1
kind: Service
metadata: {name: tcp-echo}
spec:
  clusterIP: 10.96.0.50
  ports: [{name: tcp, port: 9000}]
  selector: {app: tcp-echo}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tcp-echo-v1}
spec: {address: 10.244.0.11, labels: {app: tcp-echo, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tcp-echo-v2}
spec: {address: 10.244.0.12, labels: {app: tcp-echo, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo}
spec:
  host: tcp-echo
  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: [tcp-echo]
  tcp:
  - route:
    - {destination: {host: tcp-echo, subset: v1}, weight: 50}
    - {destination: {host: tcp-echo, subset: v2}, weight: 50}
)";

// The backend word each pod's connections (several at once, so separate sockets racing)
// all got; a test failure, and "split", for a pod whose connections went to both.
std::vector<std::string> word_of_each_pod(AttachedNode& node, const std::vector<Pod>& clients) {
    std::vector<std::string> words;
    for (const auto& pod : clients) {
        SCOPED_TRACE(pod.netns);
        const auto summary = node.load(kFrontendV4, kPerPod, &pod);
        expect_all_answered(summary, kPerPod);
        const uint64_t one = replies(summary, "one"), two = replies(summary, "two");
        EXPECT_TRUE(one == kPerPod || two == kPerPod) << "one pod's connections split: " << summary.dump();
        words.push_back(one == kPerPod ? "one" : two == kPerPod ? "two" : "split");
    }
    return words;
}

TEST_F(ConnectTest, SourceIpAffinityKeepsEachClientPodOnOneBackendAndSpreadsPods) {
    TCPSHIFT_REQUIRE_ROOT();
    std::vector<Pod> clients{node().client()};
    for (int i = 1; i < kClientPods; ++i)
        clients.push_back(node().pods().add_pod(std::to_string(i) + "-client", 100 + i));
    ASSERT_TRUE(node().pods().ok()) << node().pods().error();
    struct Case {
        std::string desc;
        std::string yaml;
    };
    const std::vector<Case> cases{
        {.desc = "native affinity: source-ip",
         .yaml = traffic_shift("tcp-echo", {kFrontendV4},
                               {{.name = "v1", .weight = 50, .backends = {"10.244.0.11:9000"}},
                                {.name = "v2", .weight = 50, .backends = {"10.244.0.12:9000"}}},
                               "source-ip")},
        {.desc = "DestinationRule consistentHash useSourceIp", .yaml = kMeshAffinity},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        node().apply(c.yaml);
        ASSERT_TRUE(answers(node(), kFrontendV4));
        const auto words = word_of_each_pod(node(), clients);
        const auto on_one = std::count(words.begin(), words.end(), "one");
        ::testing::Test::RecordProperty(c.desc,
                                        std::to_string(on_one) + " of " + std::to_string(kClientPods) + " pods on one");
        EXPECT_GT(on_one, 0) << "every client pod went to two";
        EXPECT_LT(on_one, kClientPods) << "every client pod went to one";
        // A pod's draw stays its own: the first pod again goes where it went.
        const auto again = node().load(kFrontendV4, kPerPod, &clients[0]);
        EXPECT_EQ(replies(again, words[0]), kPerPod) << again.dump();
        ASSERT_EQ(node().tcpshift_node({"delete", "-f", write_temp_file("affinity.yaml", c.yaml)}).exit_code, 0);
    }
}

}  // namespace
}  // namespace tcpshift::testing
