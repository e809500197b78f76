// The agent stopped: kill -9 under load fails nothing and the pinned counters continue;
// SIGTERM exits promptly and leaves the data plane serving, unless --detach-on-exit.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <string>
#include <thread>

#include "agent_fixture.h"
#include "client.h"
#include "base/fd.h"

namespace tcpshift::testing {
namespace {

namespace fs = std::filesystem;

TEST_F(AgentTest, KillNineUnderLoadFailsNothingAndCountersContinue) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(50, 50));
    start_agent();
    const std::string opened_v1 =
        R"(istio_tcp_connections_opened_total{reporter="destination",destination_service="tcp-echo",destination_version="v1",destination_workload="127.0.0.1:9001"})";
    Load load(netns());
    ASSERT_TRUE(wait_for([&] { return metric(opened_v1) > 20; }));
    const double before = metric(opened_v1);
    agent_.stop(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const uint64_t served_without_agent = load.ok();
    start_agent();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    load.stop();
    EXPECT_EQ(load.failed(), 0u) << load.first_error();
    EXPECT_GT(load.ok(), served_without_agent) << "traffic flowed while the agent was down and after";
    EXPECT_GT(metric(opened_v1), before) << "the restarted agent continues the pinned counters";
}

TEST_F(AgentTest, SigtermLeavesTheDataPlaneServingUnlessDetachOnExit) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(50, 50));
    start_agent();
    const int status = agent_.stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << agent_log();
    EXPECT_NE(agent_log().find("stopping; the data plane stays pinned and serving"), std::string::npos) << agent_log();
    expect_split(50, 50);

    start_agent({"--detach-on-exit"});
    agent_.stop(SIGTERM);
    EXPECT_NE(agent_log().find("detached: programs, pins and local routes removed"), std::string::npos) << agent_log();
    const auto status_json = tcpshift_here({"status", "--json"});
    EXPECT_NE(status_json.out.find("\"attached\": false"), std::string::npos) << status_json.out;
}

TEST_F(AgentTest, SigtermExitsWithinASecondAndTheDataPlaneKeepsServing) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(50, 50));
    start_agent();
    // A scraper that keeps its connection alive between scrapes, as Prometheus does, and a
    // client that connected and has not asked yet.
    httplib::Client scraper("127.0.0.1", port_);
    scraper.set_keep_alive(true);
    const auto scraped = scraper.Get("/metrics");
    ASSERT_TRUE(scraped && scraped->status == 200);
    Fd idle(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage metrics_addr{};
    const socklen_t len = to_sockaddr(endpoint("127.0.0.1:" + std::to_string(port_)), &metrics_addr);
    ASSERT_EQ(::connect(idle.get(), reinterpret_cast<sockaddr*>(&metrics_addr), len), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));

    const auto start = std::chrono::steady_clock::now();
    ::kill(agent_.pid(), SIGTERM);
    const auto status = agent_.wait(std::chrono::seconds(10));
    const auto took =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    ASSERT_TRUE(status.has_value()) << "still running 10 s after SIGTERM: " << agent_log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << agent_log();
    EXPECT_LT(took.count(), 1000) << "SIGTERM to exit took " << took.count() << " ms";
    expect_split(50, 50);
}

}  // namespace
}  // namespace tcpshift::testing
