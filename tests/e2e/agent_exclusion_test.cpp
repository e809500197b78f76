// One agent per namespace and per metrics address, and writers beside an agent refused
// unless forced; verify compares the data plane with the agent's config.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "agent_fixture.h"
#include "client.h"

namespace tcpshift::testing {
namespace {

namespace fs = std::filesystem;

// A second agent started beside the test's own, and what became of it within 5 s.
struct SecondAgent {
    Child process;  // killed when the test ends, should it still run
    std::optional<int> status;  // its wait status; nothing while it runs
    std::string err;  // its stderr
};

// Starts an agent on another directory (tcp-echo at 10/90) in `netns` with metrics on
// 127.0.0.1:port, and waits up to 5 s for it to exit.
SecondAgent start_second_agent(const fs::path& dir, const std::string& netns, int port) {
    const fs::path other = dir / "other";
    fs::create_directories(other);
    replace_file(other / "tcp-echo.yaml", tcp_echo_config(10, 90));
    const std::string log = (dir / "second.log").string();
    SecondAgent second;
    second.process = Child::start("", {TCPSHIFT_BIN, "agent", "--config", other.string(), "--netns", netns,
                                       "--metrics-addr", "127.0.0.1:" + std::to_string(port)},
                                  std::chrono::milliseconds(0), log);
    second.status = second.process.wait(std::chrono::seconds(5));
    std::ifstream in(log);
    second.err.assign(std::istreambuf_iterator<char>(in), {});
    return second;
}

TEST_F(AgentTest, ASecondAgentOnTheNamespaceFailsNamingTheFirst) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(50, 50));
    start_agent();
    const SecondAgent second = start_second_agent(dir_, netns(), free_port());
    const std::optional<int>& status = second.status;
    const std::string& err = second.err;
    ASSERT_TRUE(status.has_value()) << "the second agent still runs beside the first: " << err;
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << err;
    EXPECT_NE(err.find("agent: another agent keeps this network namespace (pid " + std::to_string(agent_.pid()) +
                       ", config " + dir_.string() + "; lock /run/tcpshift/"),
              std::string::npos)
        << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "one line: " << err;
    EXPECT_EQ(metric(kWeightV1), 50) << "the first agent's split keeps serving";
    EXPECT_EQ(tcpshift_here({"verify"}).exit_code, 0);
}

TEST_F(AgentTest, ASecondAgentOnTheMetricsAddressFailsAndTheFirstAnswersEveryScrape) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(50, 50));
    start_agent();
    TestNetns elsewhere;
    ASSERT_TRUE(elsewhere.ok());
    const SecondAgent second = start_second_agent(dir_, elsewhere.name(), port_);
    const std::optional<int>& status = second.status;
    const std::string& err = second.err;
    for (int i = 0; i < 20; ++i) EXPECT_EQ(metric(kWeightV1), 50) << "scrape " << i << " reached another agent";
    ASSERT_TRUE(status.has_value()) << "the second agent shares the metrics address: " << err;
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << err;
    EXPECT_NE(err.find("metrics: listen on 127.0.0.1:" + std::to_string(port_) +
                       " (--metrics-addr): EADDRINUSE (Address already in use)"),
              std::string::npos)
        << err;
    const auto elsewhere_status = tcpshift({"status", "--json", "--netns", elsewhere.name()});
    EXPECT_NE(elsewhere_status.out.find("\"attached\": false"), std::string::npos)
        << "the second agent changed nothing: " << elsewhere_status.out;
}

TEST_F(AgentTest, WritersBesideTheAgentAreRefusedNamingIt) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(45, 55));
    start_agent();
    const std::string other = write_temp_file("other.yaml", tcp_echo_config(5, 95));
    struct Case {
        std::string desc;
        std::vector<std::string> args;
    };
    const std::vector<Case> cases = {
        {.desc = "set", .args = {"set", "tcp-echo", "v1=5", "v2=95"}},
        {.desc = "apply", .args = {"apply", "-f", other}},
        {.desc = "delete", .args = {"delete", "trafficshift", "tcp-echo"}},
        {.desc = "detach", .args = {"detach"}},
    };
    const std::string agent = "is kept by the agent (pid " + std::to_string(agent_.pid()) + ", config " +
                              dir_.string() + "); change its config, or pass --force";
    for (const auto& c : cases) {
        const auto r = tcpshift_here(c.args);
        EXPECT_EQ(r.exit_code, 1) << c.desc << ": " << r.out << r.err;
        EXPECT_NE(r.err.find("tcpshift: " + c.desc + ": network namespace "), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(agent), std::string::npos) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    }
    EXPECT_EQ(metric(kWeightV1), 45);
    const auto verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    EXPECT_EQ(tcpshift_here({"apply", "--dry-run", "-f", other}).exit_code, 0) << "a dry run changes nothing";
    expect_split(45, 55);
}

TEST_F(AgentTest, VerifyComparesTheDataPlaneWithTheAgentsConfig) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(45, 55));
    start_agent();
    const std::string agent =
        "the agent's config (pid " + std::to_string(agent_.pid()) + ", config " + dir_.string() + ")";
    auto verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    EXPECT_NE(verify.out.find("in sync: the pinned state matches the applied set and " + agent), std::string::npos)
        << verify.out;

    const auto set = tcpshift_here({"set", "tcp-echo", "v1=5", "v2=95", "--force"});
    ASSERT_EQ(set.exit_code, 0) << set.err;
    EXPECT_NE(set.err.find("warning: the agent (pid " + std::to_string(agent_.pid()) +
                           ", config " + dir_.string() + ") restores its config at its next reload"),
              std::string::npos)
        << set.err;
    verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 1) << verify.out << verify.err;
    EXPECT_NE(verify.out.find("differs: " + agent + ": service tcp-echo (id "), std::string::npos) << verify.out;
    EXPECT_NE(verify.out.find("slots differ from the configured weights"), std::string::npos) << verify.out;

    ::kill(agent_.pid(), SIGHUP);  // the agent restores its config
    ASSERT_TRUE(wait_for([&] { return metric(kWeightV1) == 45; })) << agent_log();
    verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

    replace_file(dir_ / "broken.yaml", "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nspec: [\n");
    ASSERT_TRUE(wait_for([&] { return metric(kReloadError) == 1; })) << agent_log();
    verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 1) << verify.out << verify.err;
    EXPECT_NE(verify.out.find("differs: " + agent + ": does not load, so the agent serves the config before it: " +
                              (dir_ / "broken.yaml").string()),
              std::string::npos)
        << verify.out;
}

// A forced change killed after its shifted table went live leaves the maps holding parts of
// two sets; the agent, finding the mark with the pin lock held, puts its set back within a
// second or two, with no reload asked for.
TEST_F(AgentTest, AForcedChangeKilledMidwayIsMendedByTheAgentUnasked) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(45, 55));
    start_agent();
    ::setenv("TCPSHIFT_FAILPOINT", "install-after-tables:kill", 1);  // the child inherits it
    const auto set = tcpshift_here({"set", "tcp-echo", "v1=5", "v2=95", "--force"});
    ::unsetenv("TCPSHIFT_FAILPOINT");
    ASSERT_EQ(set.exit_code, 128 + SIGKILL) << set.err;
    ASSERT_TRUE(wait_for([&] { return tcpshift_here({"verify"}).exit_code == 0; }, std::chrono::seconds(5)))
        << tcpshift_here({"verify"}).err << agent_log();
    EXPECT_NE(agent_log().find("put applied set #1 back"), std::string::npos) << agent_log();
    expect_split(45, 55);
}

}  // namespace
}  // namespace tcpshift::testing
