// A rollout to a connect-time backend that answers late: every packet its pod sends waits in a
// token bucket (tc tbf on the pod's side; netem, the usual tool, is not in the test host's
// kernel). Its connections fail nothing, and the rollout is aborted on the RTT gate.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <sstream>
#include <thread>

#include "connect_fixture.h"
#include "report_json.h"

namespace tcpshift::testing {
namespace {

TEST_F(ConnectTest, ACanaryWhosePodAnswersLateIsAbortedOnTheRttGate) {
    node().apply(traffic_shift("tcp-echo", {kFrontendV4},
                               {{.name = "v1", .weight = 100, .backends = {"10.244.0.11:9000"}},
                                {.name = "v2", .weight = 0, .backends = {"10.244.0.12:9000"}}}));
    ASSERT_TRUE(answers(node(), kFrontendV4));
    // 8 kbit/s with a bucket of 200 bytes: each of the pod's packets waits about 70 ms for
    // its tokens, while v1 answers in microseconds.
    const auto tbf = run_command({"/sbin/tc", "-n", node().backend(1).netns, "qdisc", "add", "dev", "eth0", "root", "tbf",
                                  "rate", "8kbit", "burst", "200", "latency", "10s"});
    ASSERT_EQ(tbf.exit_code, 0) << tbf.err;
    nlohmann::json summary;
    // Bounded below the client's 28,232 ephemeral ports (32768-60999), each held 60 s in
    // TIME_WAIT: past them a connect fails EADDRNOTAVAIL, whatever tcpshift does. The rollout
    // is judged within about 6 s, well before even a fast machine makes that many.
    std::thread load([&] {
        summary = node().load({.target = kFrontendV4,
                               .connections = 20000,
                               .concurrency = 4,
                               .extra = {"--duration-ms", "15000", "--timeout-ms", "5000"}});
    });
    const CommandResult r = node().tcpshift_node({"rollout", "tcp-echo", "--to", "v2", "--steps", "20,100", "--interval",
                                                  "3s", "--min-connections", "20", "--max-rtt-increase", "50%", "--json"});
    load.join();
    std::cout << "[ figures ] " << r.err;
    EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
    std::string last;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
        if (!line.empty()) last = line;
    ASSERT_FALSE(last.empty()) << r.err;
    const auto event = nlohmann::json::parse(last);
    std::cout << "[ figures ] " << event.dump() << "\n";
    EXPECT_EQ(event["event"], "abort");
    EXPECT_EQ(event["failed_gate"], "rtt") << event.dump();
    EXPECT_EQ(event["step"], 1);
    EXPECT_EQ(summary.value("failed", 1), 0) << "late, not failed: " << summary.dump();
    EXPECT_EQ(event["weights_now"], (nlohmann::json{{"v1", 100}, {"v2", 0}}));
}

// Exactness on the connect-time path: N handshakes refused by a pod with nothing listening on
// the port are N handshake failures of that backend, and the clients saw N failures. (After a
// few, the kernel takes the backend for down and draws the others: README, Health of
// connect-time backends.)
TEST_F(ConnectTest, EachFailedHandshakeIsOneHandshakeFailure) {
    node().apply(traffic_shift("tcp-echo", {kFrontendV4},
                               {{.name = "v1", .weight = 50, .backends = {"10.244.0.11:9000"}},
                                {.name = "v2", .weight = 50, .backends = {"10.244.0.12:9001"}}}));  // no listener
    const nlohmann::json summary = node().load({.target = kFrontendV4, .connections = 400, .concurrency = 4});
    const nlohmann::json stats = node().stats();
    const nlohmann::json* v2 = backend_of(stats, "10.244.0.12:9001");
    ASSERT_TRUE(v2) << stats.dump();
    const uint64_t failed = summary.value("failed", uint64_t{0});
    std::cout << "[ figures ] clients: " << failed << " of 400 failed; the kernel: "
              << (*v2)["measured"]["failures"].dump() << "\n";
    EXPECT_GE(failed, 3u) << summary.dump();
    EXPECT_EQ((*v2)["measured"]["failures"]["handshake_failed"].get<uint64_t>(), failed) << v2->dump();
    EXPECT_EQ(replies(summary, "one") + failed, 400u) << summary.dump();
}

}  // namespace
}  // namespace tcpshift::testing
