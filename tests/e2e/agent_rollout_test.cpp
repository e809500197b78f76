// A rollout declared as a resource (kind: TrafficRollout) and run by the agent: the closing of
// a terminal stops nothing, its steps outlive the agent's reloads, and an agent killed with
// SIGKILL mid-rollout comes back holding the step reached and goes on from there, never
// skipping one.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "agent_fixture.h"
#include "report_json.h"

namespace tcpshift::testing {
namespace {

using json = nlohmann::json;

constexpr const char* kRollout = R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficRollout
metadata: {name: tcp-echo-v2}
spec:
  service: tcp-echo
  to: v2
  steps: [10, 50, 100]
  interval: 3s
  minConnections: 100
)";

class AgentRolloutTest : public AgentTest {
   protected:
    std::map<std::string, uint32_t> weights() { return applied_weights(json::parse(tcpshift_here({"status", "--json"}).out)); }
    json record() {
        const CommandResult r = tcpshift_here({"rollout", "status", "tcp-echo", "--json"});
        return r.exit_code == 0 ? json::parse(r.out) : json();
    }
};

TEST_F(AgentRolloutTest, AnAgentKilledMidRolloutComesBackHoldingItsStepAndGoesOnFromThere) {
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(100, 0));
    replace_file(dir_ / "rollout.yaml", kRollout);
    Child clients = Child::start(netns(), {TCPSHIFT_LOADGEN_BIN, "-t", "127.0.0.1:31400", "-c", "2", "-d", "60000"},
                                 std::chrono::milliseconds(0));
    start_agent();
    json rec;
    ASSERT_TRUE(wait_for([&] {
        rec = record();
        return rec.is_object() && rec["step"] == 1 && rec["step_applied"] == true;
    }, std::chrono::seconds(20))) << rec.dump() << agent_log();
    agent_.stop(SIGKILL);
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 50}, {"v2", 50}})) << "held at its step";
    std::this_thread::sleep_for(std::chrono::seconds(4));  // longer than a step
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 50}, {"v2", 50}})) << "held at its step";
    EXPECT_EQ(record()["runner_alive"], false);

    start_agent();  // reads the held step back before it applies its files' 100/0
    ASSERT_TRUE(wait_for([&] {
        rec = record();
        return rec.is_object() && rec["phase"] != "running";
    }, std::chrono::seconds(30))) << rec.dump() << agent_log();
    EXPECT_EQ(rec["phase"], "promoted") << rec.dump();
    // The notes in order: 10% taken and passed, 50% taken, taken over at 50%, passed, 100%.
    std::vector<std::string> seen;
    for (const auto& n : rec["notes"]) {
        const std::string kind = n["kind"], text = n["text"];
        if (kind == "promote") seen.push_back(kind);
        if (kind == "step" || kind == "takeover" || kind == "pass")
            seen.push_back(kind + " " + text.substr(text.find('(') + 1, text.find(')') - text.find('(') - 1));
    }
    std::string notes;
    for (const auto& s : seen) notes += s + "; ";
    std::cout << "[ figures ] " << notes << "\n";
    EXPECT_EQ(seen, (std::vector<std::string>{"step v2 10%", "pass v2 10%", "step v2 50%", "takeover v2 50%",
                                              "pass v2 50%", "step v2 100%", "pass v2 100%", "promote"}))
        << agent_log();
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 0}, {"v2", 100}}));
    // The files still say 100/0: a reload keeps the rollout's weights while it is declared.
    ::kill(agent_.pid(), SIGHUP);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 0}, {"v2", 100}})) << agent_log();
    // An edit of the ended rollout is a new rollout, from the weights now: v2 takes 100% already,
    // so it is not started, and nothing moves.
    std::string edited = kRollout;
    edited.replace(edited.find("interval: 3s"), 12, "interval: 4s");
    replace_file(dir_ / "rollout.yaml", edited);
    ASSERT_TRUE(wait_for([&] { return agent_log().find("not started: v2 takes 100% already") != std::string::npos; }))
        << agent_log();
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 0}, {"v2", 100}}));
    // Without the resource, the service has the files' weights at the next reload.
    std::filesystem::remove(dir_ / "rollout.yaml");
    EXPECT_TRUE(wait_for([&] { return weights() == std::map<std::string, uint32_t>{{"v1", 100}, {"v2", 0}}; }))
        << agent_log();
}

TEST_F(AgentRolloutTest, AFailingCanaryIsAbortedByTheAgentAndAnInvalidRolloutIsRefusedWithItsLine) {
    v2_.stop(SIGKILL);
    v2_ = start_echo(netns(), "127.0.0.1:9002", "two", {"--reset-percent", "5"});
    replace_file(dir_ / "tcp-echo.yaml", tcp_echo_config(100, 0));
    replace_file(dir_ / "rollout.yaml", kRollout);
    Child clients = Child::start(netns(), {TCPSHIFT_LOADGEN_BIN, "-t", "127.0.0.1:31400", "-c", "2", "-d", "30000"},
                                 std::chrono::milliseconds(0));
    start_agent();
    json rec;
    ASSERT_TRUE(wait_for([&] {
        rec = record();
        return rec.is_object() && rec["phase"] != "running";
    }, std::chrono::seconds(20))) << rec.dump() << agent_log();
    EXPECT_EQ(rec["phase"], "aborted");
    EXPECT_EQ(rec["failed_gate"], "failure-rate");
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 100}, {"v2", 0}}));
    EXPECT_NE(agent_log().find("failure-rate gate failed"), std::string::npos) << agent_log();
    // A rollout of a subset the service does not have fails the reload, naming it.
    std::string unknown = kRollout;
    unknown.replace(unknown.find("to: v2"), 6, "to: v9");
    replace_file(dir_ / "rollout.yaml", unknown);
    ASSERT_TRUE(wait_for([&] { return agent_log().find("rollout.yaml:1: spec.to: service \"tcp-echo\" has no subset \"v9\"") !=
                                      std::string::npos; }))
        << agent_log();
    // An invalid rollout fails the reload with file:line, and the configuration keeps serving.
    replace_file(dir_ / "rollout.yaml", std::string(kRollout) + "  maxFailureRate: 2\n");
    ::kill(agent_.pid(), SIGHUP);
    ASSERT_TRUE(wait_for([&] { return agent_log().find("rollout.yaml:10: spec.maxFailureRate") != std::string::npos; })) << agent_log();
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 100}, {"v2", 0}}));
}

}  // namespace
}  // namespace tcpshift::testing
