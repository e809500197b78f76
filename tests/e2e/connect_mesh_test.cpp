// The seed's in-mesh flow on one node, with v1 and v2 as pods: a client pod calls the
// Service's clusterIP and connect-time steering splits its connections 50/50, then 20/80
// after a DestinationRule and a VirtualService, then 50/50 again after `set`. Each split is
// judged by chi-square, and tcpshift's counts are exact: N connections give N opened.
#include <gtest/gtest.h>

#include <cmath>

#include "connect_fixture.h"
#include "stats.h"

namespace tcpshift::testing {
namespace {

constexpr uint64_t kConnections = 2000;

const std::map<std::string, std::string> kWordOf{{"10.244.0.11:9000", "one"}, {"10.244.0.12:9000", "two"}};

const std::string kWorkloads = R"(apiVersion: v1
kind: Service
metadata: {name: tcp-echo, labels: {app: tcp-echo, service: tcp-echo}}
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
)";

// The route of the task's first step: the Service's host, every workload alike.
const std::string kAllWorkloads = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: [tcp-echo]
  tcp:
  - route:
    - destination: {host: tcp-echo}
)";

const std::string kSubsets = R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo}
spec:
  host: tcp-echo
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
    - destination: {host: tcp-echo, subset: v1}
      weight: 20
    - destination: {host: tcp-echo, subset: v2}
      weight: 80
)";

// Loads the frontend with kConnections from the client pod, and checks the split, that
// nothing failed, and that stats counted every connection, once, at the backend that answered.
void expect_mesh_split(AttachedNode& node, const std::vector<double>& weights) {
    ASSERT_TRUE(answers(node, kFrontendV4));
    const auto before = node.stats();
    const auto summary = node.load(kFrontendV4, kConnections);
    const auto after = node.stats();
    expect_all_answered(summary, kConnections);
    expect_split(summary, {"one", "two"}, weights);
    expect_opened_match_replies(before, after, kWordOf, summary);
    EXPECT_EQ(connect_rewrites(after) - connect_rewrites(before), kConnections) << after.dump();
}

TEST_F(ConnectTest, TheSeedsMeshFlowSplitsFiftyFiftyThenTwentyEightyThenFiftyFiftyAfterSet) {
    TCPSHIFT_REQUIRE_ROOT();
    struct Step {
        std::string desc;
        std::string yaml;              // applied, when not empty
        std::vector<std::string> set;  // else: `tcpshift set ...`
        std::vector<double> weights;
    };
    const std::vector<Step> steps{
        {.desc = "a Service, two WorkloadEntries, a VirtualService to the host",
         .yaml = kWorkloads + "---\n" + kAllWorkloads,
         .weights = {50, 50}},
        {.desc = "a DestinationRule's subsets and a VirtualService at 20/80", .yaml = kSubsets, .weights = {20, 80}},
        {.desc = "set v1=50 v2=50", .set = {"set", "tcp-echo", "v1=50", "v2=50"}, .weights = {50, 50}},
    };
    for (const auto& step : steps) {
        SCOPED_TRACE(step.desc);
        if (!step.yaml.empty()) {
            node().apply(step.yaml);
        } else {
            const auto set = node().tcpshift_node(step.set);
            ASSERT_EQ(set.exit_code, 0) << set.err;
        }
        expect_mesh_split(node(), step.weights);
    }
}

// What status says of the 20/80 mesh service: both pods by connect-time steering, for local
// clients, and the `set` line that the flow's last step uses.
TEST_F(ConnectTest, StatusShowsTheMeshServiceServedAtConnectTime) {
    TCPSHIFT_REQUIRE_ROOT();
    node().apply(kWorkloads + "---\n" + kSubsets);
    const auto status = node().tcpshift_node({"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    const auto j = nlohmann::json::parse(status.out);
    ASSERT_EQ(j["services"].size(), 1u) << status.out;
    const auto& svc = j["services"][0];
    EXPECT_EQ(svc["set"], "tcpshift set tcp-echo v1=20 v2=80") << status.out;
    EXPECT_EQ(svc["frontends"], nlohmann::json::array({kFrontendV4})) << status.out;
    EXPECT_EQ(svc["serves"], "local clients (connect-time)") << status.out;
    for (const auto& subset : svc["subsets"])
        for (const auto& b : subset["backends"]) {
            EXPECT_EQ(b["path"], "connect-time") << b.dump();
            EXPECT_EQ(b["ready"], true) << b.dump();
        }
}

// Connect-time steering draws by the socket cookie: each connection of one client is its
// own draw. Batches of connections from one process, one at a time, must vary as binomial
// counts do (index of dispersion): a draw fixed per client makes every batch all-or-nothing,
// a round robin makes every batch exactly half.
TEST_F(ConnectTest, EachConnectionOfOneClientIsAnIndependentDraw) {
    TCPSHIFT_REQUIRE_ROOT();
    node().apply(traffic_shift("tcp-echo", {kFrontendV4},
                               {{.name = "v1", .weight = 50, .backends = {"10.244.0.11:9000"}},
                                {.name = "v2", .weight = 50, .backends = {"10.244.0.12:9000"}}}));
    ASSERT_TRUE(answers(node(), kFrontendV4));
    constexpr int kBatches = 40;
    constexpr uint64_t kBatch = 20;
    std::vector<uint64_t> ones;
    for (int i = 0; i < kBatches; ++i) {
        const auto summary = node().load({.target = kFrontendV4, .connections = kBatch, .concurrency = 1});
        expect_all_answered(summary, kBatch);
        ones.push_back(replies(summary, "one"));
    }
    ASSERT_FALSE(HasFailure());
    double total = 0;
    for (const auto x : ones) total += static_cast<double>(x);
    const double p = total / (kBatches * kBatch);
    ASSERT_GT(p, 0.0);
    ASSERT_LT(p, 1.0);
    double dispersion = 0;
    for (const auto x : ones) dispersion += std::pow(static_cast<double>(x) - kBatch * p, 2);
    dispersion /= kBatch * p * (1 - p);
    const double upper = chi_square_survival(dispersion, kBatches - 1);
    std::string counts;
    for (const auto x : ones) counts += std::to_string(x) + " ";
    ::testing::Test::RecordProperty("batches", counts + "dispersion=" + std::to_string(dispersion));
    EXPECT_GE(upper, kAlpha / 2) << "batches vary more than independent draws: " << counts;
    EXPECT_GE(1 - upper, kAlpha / 2) << "batches vary less than independent draws: " << counts;
}

}  // namespace
}  // namespace tcpshift::testing
