// The agent adopts the listeners of backends that sock_ops did not register: only once the
// writer holding the pin lock lets go, and with no more than the systemd unit's capabilities.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent_fixture.h"
#include "client.h"
#include "dataplane/pins.h"

namespace tcpshift::testing {
namespace {

namespace fs = std::filesystem;

// A cgroup with no process in it. sock_ops attached there registers no backend, so a
// listener that starts is registered only when the agent adopts it.
class EmptyCgroup {
   public:
    EmptyCgroup() {
        auto root = default_cgroup2();
        if (root) path_ = *root + "/tcpshift-e2e-" + std::to_string(::getpid());
        ok_ = root && ::mkdir(path_.c_str(), 0755) == 0;
    }
    ~EmptyCgroup() { ::rmdir(path_.c_str()); }
    bool ok() const { return ok_; }
    const std::string& path() const { return path_; }

   private:
    std::string path_;
    bool ok_ = false;
};

// setpriv arguments that give a root process what the systemd unit gives the agent: no new
// privileges, and its CapabilityBoundingSet, which for root is also the permitted and
// effective set.
std::vector<std::string> with_the_units_capabilities() {
    std::ifstream unit(std::string(TCPSHIFT_SOURCE_DIR) + "/packaging/tcpshift-agent.service");
    std::string bounding = "-all";
    for (std::string line; std::getline(unit, line);) {
        if (!line.starts_with("CapabilityBoundingSet=")) continue;
        std::istringstream caps(line.substr(line.find('=') + 1));
        for (std::string cap; caps >> cap;) {
            std::transform(cap.begin(), cap.end(), cap.begin(), [](unsigned char c) { return std::tolower(c); });
            bounding += ",+" + cap.substr(4);  // cap_bpf -> bpf
        }
    }
    return {"/usr/bin/setpriv", "--no-new-privs", "--bounding-set=" + bounding, "--"};
}

uint64_t effective_capabilities(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.starts_with("CapEff:")) return std::stoull(line.substr(7), nullptr, 16);
    return ~0ull;
}

TEST_F(AgentTest, AdoptionWaitsForTheWriterThatHoldsThePinLock) {
    EmptyCgroup cgroup;
    ASSERT_TRUE(cgroup.ok()) << cgroup.path();
    const auto attach = tcpshift_here({"attach", "--cgroup", cgroup.path()});
    ASSERT_EQ(attach.exit_code, 0) << attach.err;
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(50, 50));
    start_agent();
    ASSERT_EQ(metric(kReadyV2), 1) << "adopted at start: " << agent_log();
    v2_.stop(SIGKILL);
    ASSERT_TRUE(wait_for([&] { return metric(kReadyV2) == 0; }));
    {
        auto writer = PinLock::acquire(std::chrono::seconds(5));
        ASSERT_TRUE(writer) << writer.error().message;
        v2_ = start_echo(netns(), "127.0.0.1:9002", "two");
        std::this_thread::sleep_for(std::chrono::milliseconds(2500));
        EXPECT_EQ(metric(kReadyV2), 0) << "adopted while another writer held the pin lock: " << agent_log();
    }
    EXPECT_TRUE(wait_for([&] { return metric(kReadyV2) == 1; }, std::chrono::seconds(3))) << agent_log();
    EXPECT_NE(agent_log().find("adopted the listener of backend 127.0.0.1:9002 from tcpshift-echo"), std::string::npos)
        << agent_log();
}

TEST_F(AgentTest, WithTheUnitsCapabilitiesItAdoptsTheBackendOfAnotherUser) {
    if (!fs::exists("/usr/bin/setpriv"))
        GTEST_FAIL() << "setpriv is not installed; scripts/setup.sh installs util-linux";
    v1_.stop(SIGKILL);
    v1_ = Child::start(netns(), {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                 TCPSHIFT_ECHO_BIN, "--listen", "127.0.0.1:9001", "--prefix", "one"});
    ASSERT_FALSE(v1_.first_line().empty()) << "the backend did not start as nobody";
    struct stat proc {};
    ASSERT_EQ(::stat(("/proc/" + std::to_string(v1_.pid())).c_str(), &proc), 0);
    ASSERT_EQ(proc.st_uid, 65534u) << "the backend runs as nobody";
    const auto setpriv = with_the_units_capabilities();
    ASSERT_NE(setpriv[2].find(",+bpf"), std::string::npos) << "the unit was not read: " << setpriv[2];
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(50, 50));
    port_ = free_port();
    bool healthy = false;
    agent_ = tcpshift::testing::start_agent(netns(), dir_.string(), port_, log_, {}, &healthy, setpriv);
    ASSERT_TRUE(healthy) << agent_log();
    EXPECT_EQ(effective_capabilities(agent_.pid()) & (1ull << 1), 0u) << "the agent runs without CAP_DAC_OVERRIDE";
    const std::string ready_v1 = R"(tcpshift_backend_ready{service="tcp-echo",subset="v1",backend="127.0.0.1:9001"})";
    EXPECT_EQ(metric(ready_v1), 1) << agent_log();
    const auto status = tcpshift_here({"status"});
    EXPECT_NE(status.out.find("v1      50      50.0%  127.0.0.1:9001  socket  yes"), std::string::npos) << status.out;
    expect_split(50, 50);
}

}  // namespace
}  // namespace tcpshift::testing
