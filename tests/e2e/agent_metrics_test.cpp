// What the agent exports: exact connection and byte counts, readiness that follows the
// backend, and a real Prometheus scraping the split.
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "agent_fixture.h"
#include "client.h"

namespace tcpshift::testing {
namespace {

namespace fs = std::filesystem;

// A Prometheus server on 127.0.0.1:`port` scraping the agent's metrics on `agent_port` every
// second, its files under `dir`.
Child start_prometheus(const fs::path& dir, int agent_port, int port) {
    fs::create_directories(dir);
    std::ofstream(dir / "prometheus.yml")
        << "global: {scrape_interval: 1s}\nscrape_configs:\n- job_name: tcpshift\n  static_configs:\n"
        << "  - targets: ['127.0.0.1:" << agent_port << "']\n";
    return Child::start("",
                        {"/usr/bin/prometheus", "--config.file=" + (dir / "prometheus.yml").string(),
                         "--storage.tsdb.path=" + (dir / "data").string(),
                         "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                        std::chrono::milliseconds(0), (dir / "prometheus.log").string());
}

TEST_F(AgentTest, MetricsCountConnectionsAndBytesExactly) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(100, 0));
    start_agent();
    constexpr int kConnections = 300;
    const std::string line(99, 'x');  // with the newline, 100 bytes a connection
    {
        auto in = enter();
        for (int i = 0; i < kConnections; ++i) {
            const EchoResult r = echo_once(endpoint("127.0.0.1:31400"), line);
            ASSERT_TRUE(r.ok) << r.error;
            ASSERT_EQ(r.reply, "one " + line);
        }
    }
    const std::string v1 =
        R"({reporter="destination",destination_service="tcp-echo",destination_version="v1",destination_workload="127.0.0.1:9001"})";
    ASSERT_TRUE(wait_for([&] { return metric("istio_tcp_connections_closed_total" + v1) == kConnections; }))
        << metrics();
    const std::string text = metrics();
    EXPECT_EQ(metric_value(text, "istio_tcp_connections_opened_total" + v1), kConnections);
    EXPECT_EQ(metric_value(text, "istio_tcp_received_bytes_total" + v1), kConnections * 100);
    EXPECT_EQ(metric_value(text, "istio_tcp_sent_bytes_total" + v1), kConnections * 104) << "\"one \" + 100 bytes";
    EXPECT_EQ(metric_value(text, R"(tcpshift_connections_active{service="tcp-echo",subset="v1",backend="127.0.0.1:9001"})"),
              0);
    // `tcpshift stats` reads the same numbers without the agent.
    const auto stats = tcpshift_here({"stats", "--json"});
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    EXPECT_NE(stats.out.find("\"bytes_received\": " + std::to_string(kConnections * 100)), std::string::npos)
        << stats.out;
}

TEST_F(AgentTest, ReadinessFollowsTheBackendWithinASecond) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(50, 50));
    start_agent();
    ASSERT_EQ(metric(kReadyV2), 1) << metrics();
    v2_.stop(SIGKILL);
    EXPECT_TRUE(wait_for([&] { return metric(kReadyV2) == 0; }, std::chrono::seconds(1)));
    v2_ = start_echo(netns(), "127.0.0.1:9002", "two");
    EXPECT_TRUE(wait_for([&] { return metric(kReadyV2) == 1; }, std::chrono::seconds(1)));
}

TEST_F(AgentTest, APrometheusServerScrapesTheSplit) {
    if (!fs::exists("/usr/bin/prometheus")) GTEST_FAIL() << "prometheus is not installed; scripts/setup.sh installs it";
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(20, 80));
    start_agent();
    Tally sent;
    {
        auto in = enter();
        sent = tally(endpoint("127.0.0.1:31400"), 1000);
        ASSERT_EQ(sent.failures, 0u);
    }
    const int prom_port = free_port();
    Child prometheus = start_prometheus(dir_ / "prometheus", port_, prom_port);
    const std::string query =
        "/api/v1/query?query=sum%20by%20(destination_version)%20(istio_tcp_connections_opened_total)";
    std::string body;
    const bool answered = wait_for(
        [&] {
            body = http_get(prom_port, query).body;
            return body.find("\"v1\"") != std::string::npos && body.find("\"v2\"") != std::string::npos;
        },
        std::chrono::seconds(30));
    ASSERT_TRUE(answered) << body;
    // The query's vector, parsed: {"data": {"result": [{"metric": {"destination_version": "v1"},
    // "value": [TIME, "COUNT"]}, ...]}}; each subset's value must be exactly what it answered.
    const auto reply = nlohmann::json::parse(body, nullptr, false);
    ASSERT_TRUE(reply.is_object()) << body;
    std::map<std::string, uint64_t> scraped;
    for (const auto& series : reply["data"]["result"])
        scraped[series["metric"]["destination_version"].get<std::string>()] =
            std::stoull(series["value"][1].get<std::string>());
    EXPECT_EQ(scraped.size(), 2u) << body;
    EXPECT_EQ(scraped["v1"], sent["one"]) << body;
    EXPECT_EQ(scraped["v2"], sent["two"]) << body;
}

// The queries the README gives a Flagger MetricTemplate or an Argo AnalysisTemplate, asked of
// a real Prometheus scraping the agent while a v2 that resets a tenth of its connections takes
// half of them: the failure ratio it answers is the kernel's, and the p99 RTT a loopback one.
TEST_F(AgentTest, TheCanaryQueriesOfTheReadmeAnswerInPrometheus) {
    if (!fs::exists("/usr/bin/prometheus")) GTEST_FAIL() << "prometheus is not installed; scripts/setup.sh installs it";
    v2_.stop(SIGKILL);
    v2_ = start_echo(netns(), "127.0.0.1:9002", "two", {"--reset-percent", "10"});
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(50, 50));
    start_agent();
    const int prom_port = free_port();
    Child prometheus = start_prometheus(dir_ / "prometheus", port_, prom_port);
    const auto encoded = [](const std::string& q) {
        std::string out;
        for (unsigned char c : q) {
            char hex[4];
            std::snprintf(hex, sizeof(hex), "%%%02X", c);
            out += std::isalnum(c) ? std::string(1, static_cast<char>(c)) : std::string(hex);
        }
        return out;
    };
    // The value of a query's one sample; NaN when it has none.
    const auto value = [&](const std::string& q) {
        const auto reply = nlohmann::json::parse(http_get(prom_port, "/api/v1/query?query=" + encoded(q)).body, nullptr, false);
        if (!reply.is_object() || reply["data"]["result"].size() != 1) return std::nan("");
        return std::stod(reply["data"]["result"][0]["value"][1].get<std::string>());
    };
    // Counters must be scraped before the traffic, for increase() to see it.
    ASSERT_TRUE(wait_for([&] { return value("up{job=\"tcpshift\"}") == 1; }, std::chrono::seconds(30)));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    Tally sent;
    {
        auto in = enter();
        sent = tally_from_many_sources(endpoint("127.0.0.1:31400"), 2000);
    }
    ASSERT_GT(sent.failures, 20u) << sent.str();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    const double kernel_ratio = static_cast<double>(sent.failures) / static_cast<double>(sent.failures + sent["two"]);
    const std::string failure_ratio =
        "sum(increase(tcpshift_connection_failures_total{service=\"tcp-echo\",subset=\"v2\",reason!=\"listen_overflow\"}[1m]))"
        " / sum(increase(istio_tcp_connections_opened_total{destination_service=\"tcp-echo\",destination_version=\"v2\"}[1m]))";
    const std::string p99_rtt =
        "histogram_quantile(0.99, sum by (le) (rate(tcpshift_connection_rtt_seconds_bucket{service=\"tcp-echo\",subset=\"v2\"}[1m])))";
    const double ratio = value(failure_ratio), rtt = value(p99_rtt);
    std::cout << "[ figures ] failure ratio: Prometheus " << ratio << ", the clients " << kernel_ratio
              << "; p99 RTT " << rtt * 1e6 << " us\n";
    // increase() extrapolates to the window's edges: the same share, not the same counts.
    EXPECT_NEAR(ratio, kernel_ratio, kernel_ratio * 0.15);
    EXPECT_GT(rtt, 0);
    EXPECT_LE(rtt, 0.001) << "loopback";
}

}  // namespace
}  // namespace tcpshift::testing
