// The agent lock without root: a file in a temporary directory stands for the namespace's.
#include "apply/agent_lock.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <optional>

namespace tcpshift {
namespace {

namespace fs = std::filesystem;

class AgentLockTest : public ::testing::Test {
   protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("tcpshift-agent-lock-" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        path_ = (dir_ / "4026531840" / "agent.lock").string();
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::optional<AgentClaim> running() {
        auto agent = running_agent(path_);
        EXPECT_TRUE(agent) << agent.error().message;
        return agent ? *agent : std::nullopt;
    }

    const AgentClaim claim_{.pid = ::getpid(), .config = {"/etc/tcpshift", "/etc/tcpshift-extra.yaml"}, .ns = "prod"};
    fs::path dir_;
    std::string path_;
};

TEST_F(AgentLockTest, NoAgentWithoutTheFile) { EXPECT_FALSE(running().has_value()); }

TEST_F(AgentLockTest, TheHolderIsNamedAndASecondAgentFails) {
    auto first = AgentLock::acquire(path_, claim_);
    ASSERT_TRUE(first) << first.error().message;
    const auto agent = running();
    ASSERT_TRUE(agent.has_value());
    EXPECT_EQ(agent->pid, ::getpid());
    EXPECT_EQ(agent->config, claim_.config);
    EXPECT_EQ(agent->ns, "prod");

    auto second = AgentLock::acquire(path_, AgentClaim{.pid = ::getpid() + 1, .config = {"/elsewhere"}});
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().kind, ErrorKind::kSystem);
    EXPECT_EQ(second.error().message,
              "agent: another agent keeps this network namespace (pid " + std::to_string(::getpid()) +
                  ", config /etc/tcpshift /etc/tcpshift-extra.yaml; lock " + path_ +
                  "); one agent per namespace: stop it first");
}

TEST_F(AgentLockTest, TheLockEndsWithItsHolder) {
    { ASSERT_TRUE(AgentLock::acquire(path_, claim_)); }
    EXPECT_TRUE(fs::exists(path_)) << "the file stays; the lock on it is what counts";
    EXPECT_FALSE(running().has_value());
    EXPECT_TRUE(AgentLock::acquire(path_, claim_));
}

TEST_F(AgentLockTest, KeepTakesTheLockAgainWhenItsFileIsRemoved) {
    auto lock = AgentLock::acquire(path_, claim_);
    ASSERT_TRUE(lock);
    fs::remove_all(dir_);
    EXPECT_FALSE(running().has_value()) << "a removed file stops no second agent";
    ASSERT_TRUE(lock->keep());
    const auto agent = running();
    ASSERT_TRUE(agent.has_value());
    EXPECT_EQ(agent->pid, ::getpid());
    EXPECT_TRUE(lock->keep()) << "nothing to do while the file is its own";
}

TEST_F(AgentLockTest, KeepFailsWhenAnotherAgentTookTheNewFile) {
    auto lock = AgentLock::acquire(path_, claim_);
    ASSERT_TRUE(lock);
    fs::remove(path_);
    auto other = AgentLock::acquire(path_, AgentClaim{.pid = 4242, .config = {"/other"}});
    ASSERT_TRUE(other);
    auto kept = lock->keep();
    ASSERT_FALSE(kept);
    EXPECT_NE(kept.error().message.find("(pid 4242, config /other;"), std::string::npos) << kept.error().message;
}

}  // namespace
}  // namespace tcpshift
