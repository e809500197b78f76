#include "connect_health_fixture.h"

#include <signal.h>

#include "stats.h"

namespace tcpshift::testing {

namespace {

constexpr uint16_t kPort = 9000;
const char* const kNames[] = {"v1", "v2", "v3"};

}  // namespace

std::string native_config() {
    return R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: tcp-echo}
spec:
  listen: [")" + std::string(kFrontend) +
           R"("]
  outlierDetection: {consecutiveErrors: 3, baseEjectionTime: 5s}
  subsets:
  - {name: v1, weight: 20, backends: ["10.244.0.11:9000"]}
  - {name: v2, weight: 30, backends: ["10.244.0.12:9000"]}
  - {name: v3, weight: 50, backends: ["10.244.0.13:9000"]}
)";
}

std::string mesh_config() {
    std::string workloads;
    for (int n = 1; n <= 3; ++n)
        workloads += "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: tcp-echo-v" +
                     std::to_string(n) + "}\nspec: {address: 10.244.0.1" + std::to_string(n) +
                     ", labels: {app: tcp-echo, version: v" + std::to_string(n) + "}}\n";
    return R"(apiVersion: v1
kind: Service
metadata: {name: tcp-echo}
spec:
  clusterIP: 10.96.0.50
  ports: [{name: tcp, port: 9000}]
  selector: {app: tcp-echo}
)" + workloads + R"(---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo}
spec:
  host: tcp-echo
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, baseEjectionTime: 5s, interval: 1s}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: [tcp-echo]
  tcp:
  - route:
    - {destination: {host: tcp-echo, subset: v1}, weight: 20}
    - {destination: {host: tcp-echo, subset: v2}, weight: 30}
    - {destination: {host: tcp-echo, subset: v3}, weight: 50}
)";
}

void ConnectHealthTest::SetUp() {
    TCPSHIFT_REQUIRE_ROOT();
    node_ = std::make_unique<PodNode>();
    for (int n = 1; n <= 3; ++n) pods_.push_back(node_->add_pod(kNames[n - 1], 10 + n));
    client_ = node_->add_pod("client", 100);
    ASSERT_TRUE(node_->ok()) << node_->error();
    cgroup_ = std::make_unique<TestCgroup>();
    ASSERT_TRUE(cgroup_->ok()) << cgroup_->error();
    for (size_t i = 0; i < pods_.size(); ++i) {
        backends_.emplace_back();
        start_backend(i);
    }
    ASSERT_FALSE(HasFailure());
    const auto r = tcpshift_on_node({"attach", "--cgroup", cgroup_->path()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    attached_ = true;
}

void ConnectHealthTest::TearDown() {
    if (agent_.running()) agent_.stop(SIGTERM);
    if (attached_) {
        const auto r = tcpshift_on_node({"detach"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    backends_.clear();
    cgroup_.reset();
    node_.reset();
}

CommandResult ConnectHealthTest::tcpshift_on_node(std::vector<std::string> args) {
    args.push_back("--netns");
    args.push_back(node_->netns());
    return tcpshift(args);
}

void ConnectHealthTest::apply(const std::string& yaml) {
    const auto r = tcpshift_on_node({"apply", "-f", write_temp_file("health.yaml", yaml)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
}

void ConnectHealthTest::start_backend(size_t i) {
    backends_[i] = start_echo(pods_[i].netns, pods_[i].ipv4_endpoint(kPort), kNames[i]);
    EXPECT_TRUE(backends_[i].first_line().starts_with("listening on")) << kNames[i] << " did not start";
}

nlohmann::json ConnectHealthTest::load(std::chrono::milliseconds duration, std::chrono::milliseconds timeout) {
    return run_loadgen(client_.netns, cgroup_->path(),
                       {.target = kFrontend,
                        .connections = 100000000,
                        .concurrency = kConcurrency,
                        .extra = {"--duration-ms", std::to_string(duration.count()), "--timeout-ms",
                                  std::to_string(timeout.count())}});
}

nlohmann::json ConnectHealthTest::load_n(uint64_t connections) {
    return run_loadgen(client_.netns, cgroup_->path(),
                       {.target = kFrontend, .connections = connections, .concurrency = kConcurrency});
}

void ConnectHealthTest::expect_split(const nlohmann::json& summary, const std::vector<double>& weights) {
    EXPECT_EQ(summary.value("failed", uint64_t{1}), 0u) << summary.dump();
    const auto by_reply = summary.value("by_reply", nlohmann::json::object());
    std::vector<uint64_t> observed;
    for (size_t i = 0; i < weights.size(); ++i) {
        observed.push_back(by_reply.value(kNames[i], uint64_t{0}));
        if (weights[i] == 0) {
            EXPECT_EQ(observed.back(), 0u) << kNames[i] << " took connections: " << summary.dump();
        }
    }
    const uint64_t total = summary.value("ok", uint64_t{0});
    // Enough for the test to see a split that is off by 10 points of the smallest share.
    EXPECT_GE(total, sample_size_for(weights, 0.1)) << summary.dump();
    const SplitVerdict v = chi_square_split(observed, weights);
    EXPECT_GE(v.p_value, kAlpha) << "split rejected: " << summary.dump() << "\n" << v.table;
}

nlohmann::json ConnectHealthTest::backend_status(int n) {
    const auto r = tcpshift_on_node({"status", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto status = nlohmann::json::parse(r.out, nullptr, false);
    const std::string address = pods_[static_cast<size_t>(n - 1)].ipv4_endpoint(kPort);
    if (status.is_object())
        for (const auto& svc : status.value("services", nlohmann::json::array()))
            for (const auto& subset : svc["subsets"])
                for (const auto& b : subset["backends"])
                    if (b["address"] == address) return b;
    ADD_FAILURE() << "no backend " << address << " in status: " << r.out;
    return nlohmann::json::object();
}

}  // namespace tcpshift::testing
