#include "agent_fixture.h"

#include <signal.h>

#include <fstream>
#include <iterator>

#include "client.h"
#include "stats.h"

namespace tcpshift::testing {

namespace fs = std::filesystem;

void replace_file(const fs::path& path, const std::string& text) {
    const fs::path tmp = path.string() + ".tmp~";
    std::ofstream(tmp) << text;
    fs::rename(tmp, path);
}

Load::Load(const std::string& netns) {
    thread_ = std::thread([this, netns] {
        auto scope = ScopedNetns::enter(netns);
        if (!scope) return;
        while (!stop_) {
            const EchoResult r = echo_once(endpoint("127.0.0.1:31400"), "hello", std::chrono::seconds(3));
            ++(r.ok ? ok_ : failed_);
            if (!r.ok && first_error_.empty()) first_error_ = r.error;
        }
    });
}

void Load::stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
}

void AgentTest::SetUp() {
    NetnsTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    dir_ = fs::path(write_temp_file("agent-dir", "")).parent_path() / ("agent-" + netns());
    fs::create_directories(dir_);
    log_ = (dir_ / "agent.log").string();
    v1_ = start_echo(netns(), "127.0.0.1:9001", "one");
    v2_ = start_echo(netns(), "127.0.0.1:9002", "two");
}

void AgentTest::TearDown() {
    agent_.stop(SIGKILL);  // before the namespace it serves goes away
    NetnsTest::TearDown();
}

void AgentTest::start_agent(const std::vector<std::string>& extra) {
    port_ = free_port();
    bool healthy = false;
    agent_ = tcpshift::testing::start_agent(netns(), dir_.string(), port_, log_, extra, &healthy);
    ASSERT_TRUE(healthy) << agent_log();
}

std::string AgentTest::metrics() { return http_get(port_, "/metrics").body; }

double AgentTest::metric(const std::string& series) { return metric_value(metrics(), series); }

std::string AgentTest::agent_log() {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void AgentTest::expect_split(double w1, double w2) {
    auto in = enter();
    const Tally t = tally(endpoint("127.0.0.1:31400"), 2000);
    ASSERT_EQ(t.failures, 0u) << t.str() << "\n" << tcpshift_here({"stats"}).out;
    const SplitVerdict v = chi_square_split({t["one"], t["two"]}, {w1, w2});
    EXPECT_GE(v.p_value, kAlpha) << w1 << "/" << w2 << " rejected: " << t.str() << "\n" << v.table;
}

}  // namespace tcpshift::testing
