// The agent follows its directory: an edited file, a later file that replaces an earlier
// definition, a ConfigMap updated by the kubelet; a file that does not load is logged and
// counted while the previous split keeps serving.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>

#include "agent_fixture.h"

namespace tcpshift::testing {
namespace {

namespace fs = std::filesystem;

TEST_F(AgentTest, AnEditedFileShiftsTheSplitWithNoFailedConnection) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(50, 50));
    start_agent();
    expect_split(50, 50);
    {
        Load load(netns());
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(20, 80));
        ASSERT_TRUE(wait_for([&] { return metric(kWeightV1) == 20; })) << agent_log();
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        load.stop();
        EXPECT_GT(load.ok(), 0u);
        EXPECT_EQ(load.failed(), 0u) << load.first_error();
    }
    expect_split(20, 80);
    EXPECT_NE(agent_log().find(" info applied (config changed): 1 services"), std::string::npos) << agent_log();
}

// The agent reads its directory as `apply -f DIR` does: its files by name, a later definition
// of a resource replacing an earlier one, and the note in its log.
TEST_F(AgentTest, ALaterFileOfTheDirectoryReplacesAnEarlierDefinition) {
    replace_file(dir_ / "20-shift.yaml", tcp_echo_config(20, 80));
    replace_file(dir_ / "10-tcp-echo.yaml", tcp_echo_config(50, 50));
    start_agent();
    ASSERT_TRUE(wait_for([&] { return metric(kWeightV1) == 20; })) << agent_log();
    expect_split(20, 80);
    const std::string note = " info " + (dir_ / "20-shift.yaml").string() +
                             ":1: TrafficShift \"tcp-echo\" in namespace default replaces the one at " +
                             (dir_ / "10-tcp-echo.yaml").string() + ":1 (a directory's files apply in name order";
    EXPECT_NE(agent_log().find(note), std::string::npos) << agent_log();
}

TEST_F(AgentTest, AnInvalidFileIsLoggedCountedAndTheOldSplitKeepsServing) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(20, 80));
    start_agent();
    replace_file(dir_ / "broken.yaml", "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nspec: [\n");
    ASSERT_TRUE(wait_for([&] { return metric(kReloadError) == 1; })) << agent_log();
    EXPECT_NE(agent_log().find(" error reload (config changed) failed, the previous configuration keeps serving: " +
                               (dir_ / "broken.yaml").string()),
              std::string::npos)
        << agent_log();
    EXPECT_EQ(metric(kWeightV1), 20);
    expect_split(20, 80);
    // SIGHUP retries; still invalid, still counted.
    ::kill(agent_.pid(), SIGHUP);
    ASSERT_TRUE(wait_for([&] { return metric(kReloadError) == 2; })) << agent_log();
}


// Writes a file the way the kubelet updates a mounted ConfigMap (its atomic writer): the
// payload in a new timestamped directory, a `..data_tmp` symlink to it renamed over `..data`,
// the visible file a symlink through `..data`, and the previous directory removed.
void kubelet_update(const fs::path& dir, const std::string& name, const std::string& text) {
    static int generation = 0;
    const std::string stamp = "..2026_11_26_10_00_0" + std::to_string(generation++) + ".123456789";
    fs::create_directory(dir / stamp);
    std::ofstream(dir / stamp / name) << text;
    std::error_code none;
    const fs::path previous = fs::read_symlink(dir / "..data", none);
    fs::create_directory_symlink(stamp, dir / "..data_tmp");
    fs::rename(dir / "..data_tmp", dir / "..data");
    if (!fs::is_symlink(dir / name)) fs::create_symlink(fs::path("..data") / name, dir / name);
    if (!none) fs::remove_all(dir / previous);
}

TEST_F(AgentTest, AConfigMapUpdateByTheKubeletShiftsTheSplit) {
    kubelet_update(dir_, "tcp-echo.yaml", tcp_echo_config(50, 50));
    start_agent();
    EXPECT_EQ(metric(kWeightV1), 50) << agent_log();
    kubelet_update(dir_, "tcp-echo.yaml", tcp_echo_config(20, 80));
    ASSERT_TRUE(wait_for([&] { return metric(kWeightV1) == 20; })) << "no reload: " << agent_log();
    expect_split(20, 80);
    EXPECT_NE(agent_log().find(" info applied (config changed): 1 services — tcp-echo: v1 20 v2 80"),
              std::string::npos)
        << agent_log();
    const auto verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

}  // namespace
}  // namespace tcpshift::testing
