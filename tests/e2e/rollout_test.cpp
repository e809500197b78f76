// `tcpshift rollout` against real backends and clients: a canary that resets some of its
// connections is aborted at its first judgement and the starting weights come back; a healthy
// one is promoted, run after run; a runner killed with SIGKILL leaves its step held, and the
// rollout taken over goes on from that step, never past it; a step without traffic waits.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "report_json.h"
#include "steering_fixture.h"

namespace tcpshift::testing {
namespace {

using json = nlohmann::json;

// The rollout's JSON events, one a line.
std::vector<json> events_of(const std::string& out) {
    std::vector<json> events;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) events.push_back(json::parse(line));
    return events;
}

// The canary's share at each "step" event, in order.
std::vector<uint32_t> steps_taken(const std::vector<json>& events) {
    std::vector<uint32_t> out;
    for (const auto& e : events)
        if (e["event"] == "step" || e["event"] == "takeover") out.push_back(e["percent"]);
    return out;
}

class RolloutTest : public SteeringTest {
   protected:
    // Dual-stack: v1 answers "one"; v2 answers "two", and is faulty as `v2_fault` says.
    void serve(double v2_reset_percent, std::vector<std::string> v2_fault = {}) {
        v1_ = start_echo(netns(), "[::]:9001", "one");
        v2_fault.insert(v2_fault.end(), {"--reset-percent", std::to_string(v2_reset_percent)});
        v2_ = start_echo(netns(), "[::]:9002", "two", v2_fault);
        apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400", "[::1]:31400"])",
                            {{"v1", 100, {"127.0.0.1:9001", "[::1]:9001"}}, {"v2", 0, {"127.0.0.1:9002", "[::1]:9002"}}}));
    }
    // IPv4 and IPv6 clients opening short connections for `seconds`, two at a time.
    Child load(int seconds) {
        return Child::start(netns(), {TCPSHIFT_LOADGEN_BIN, "-t", "127.0.0.1:31400", "-t", "[::1]:31400", "-c", "2", "-d",
                                      std::to_string(seconds * 1000), "--timeout-ms", "1000"},
                            std::chrono::milliseconds(0));
    }
    // `tcpshift rollout ARGS --netns NS`, bounded at `limit_s`.
    CommandResult rollout(std::vector<std::string> args, int limit_s = 90) {
        std::vector<std::string> argv{"/usr/bin/timeout", std::to_string(limit_s), TCPSHIFT_BIN, "rollout"};
        argv.insert(argv.end(), args.begin(), args.end());
        argv.insert(argv.end(), {"--netns", netns()});
        return run_command(argv);
    }
    // The weights applied now, from `status --json`.
    std::map<std::string, uint32_t> weights() { return applied_weights(json::parse(tcpshift_here({"status", "--json"}).out)); }
    json record() { return json::parse(rollout({"status", "tcp-echo", "--json"}).out); }

    Child v1_, v2_;
};

TEST_F(RolloutTest, ACanaryThatResetsFivePercentIsAbortedAtItsFirstJudgementAndTheStartingWeightsComeBack) {
    serve(5);
    Child clients = load(60);
    const std::string plot = write_temp_file("abort.svg", "");
    const CommandResult r = rollout({"tcp-echo", "--to", "v2", "--steps", "10,50,100", "--interval", "3s",
                                     "--max-failure-rate", "1%", "--min-connections", "100", "--json", "--plot", plot});
    std::cout << "[ figures ] " << r.err;
    EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
    const auto events = events_of(r.out);
    ASSERT_FALSE(events.empty()) << r.err;
    const json& last = events.back();
    std::cout << "[ figures ] " << last.dump() << "\n";
    EXPECT_EQ(last["event"], "abort") << last.dump();
    EXPECT_EQ(last["failed_gate"], "failure-rate") << last.dump();
    EXPECT_EQ(last["step"], 1) << "aborted at the first step: " << last.dump();
    EXPECT_EQ(steps_taken(events), (std::vector<uint32_t>{10}));
    uint64_t step_at = 0;
    for (const auto& e : events)
        if (e["event"] == "step") step_at = e["t_ms"];
    EXPECT_LE(last["t_ms"].get<uint64_t>() - step_at, 2 * 3000u) << "within two intervals";
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 100}, {"v2", 0}}));
    // New connections go to v1 alone again.
    {
        auto in = enter();
        const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), 200);
        EXPECT_EQ(t["one"], 200u) << t.str();
    }
    const json rec = record();
    EXPECT_EQ(rec["phase"], "aborted");
    EXPECT_EQ(rec["failed_gate"], "failure-rate");
    std::ifstream svg(plot);
    std::stringstream text;
    text << svg.rdbuf();
    EXPECT_NE(text.str().find(">abort</text>"), std::string::npos) << "the plot marks the abort";
    // What the rollout judged is what the kernel counted, of both families' clients: v2 took
    // connections during its step only, so its totals at the end are the kernel's counters
    // (bar connections still closing as it was judged).
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const json stats = json::parse(tcpshift_here({"stats", "--json"}).out);
    const json* v4 = backend_of(stats, "127.0.0.1:9002");
    const json* v6 = backend_of(stats, "[::1]:9002");
    ASSERT_TRUE(v4 && v6) << stats.dump();
    const uint64_t opened = (*v4)["opened"].get<uint64_t>() + (*v6)["opened"].get<uint64_t>();
    const uint64_t failed = (*v4)["measured"]["failures"]["closed_before_data"].get<uint64_t>() +
                            (*v6)["measured"]["failures"]["closed_before_data"].get<uint64_t>();
    EXPECT_GT((*v6)["opened"].get<uint64_t>(), 50u) << "IPv6 clients reached v2: " << v6->dump();
    const json totals = rec["timeline"].back()["totals"]["v2"];
    std::cout << "[ figures ] v2 over the rollout " << totals.dump() << "; the kernel: opened " << opened << ", failed "
              << failed << "\n";
    EXPECT_LE(totals["connections"].get<uint64_t>(), opened);
    EXPECT_GE(totals["connections"].get<uint64_t>() + 20, opened);
    EXPECT_LE(totals["failures"].get<uint64_t>(), failed);
    EXPECT_GE(totals["failures"].get<uint64_t>() + 5, failed);
}

// The load generator's clients half-close after their request, as `nc -N` does: a canary that
// then closes without a word fails no connection by the failure-rate gate's reasons (an upload
// ends so), but answers less than its baseline.
TEST_F(RolloutTest, ACanaryThatClosesWithoutAnsweringIsAbortedOnTheUnansweredGate) {
    serve(0, {"--unanswered-percent", "20"});
    Child clients = load(60);
    const CommandResult r = rollout({"tcp-echo", "--to", "v2", "--steps", "10,50,100", "--interval", "3s",
                                     "--min-connections", "100", "--json"});
    EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
    const auto events = events_of(r.out);
    ASSERT_FALSE(events.empty()) << r.err;
    std::cout << "[ figures ] " << events.back().dump() << "\n";
    EXPECT_EQ(events.back()["event"], "abort");
    EXPECT_EQ(events.back()["failed_gate"], "unanswered") << events.back().dump();
    EXPECT_EQ(events.back()["step"], 1);
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 100}, {"v2", 0}}));
}

TEST_F(RolloutTest, AHealthyCanaryIsPromotedRunAfterRunWithoutAFalseAbort) {
    serve(0);
    Child clients = load(120);
    constexpr int kRuns = 3;
    int promoted = 0;
    for (int run = 0; run < kRuns; ++run) {
        ASSERT_EQ(tcpshift_here({"set", "tcp-echo", "v1=100", "v2=0"}).exit_code, 0);
        const CommandResult r = rollout({"tcp-echo", "--to", "v2", "--steps", "10,50,100", "--interval", "2s",
                                         "--min-connections", "100", "--json"});
        const auto events = events_of(r.out);
        ASSERT_FALSE(events.empty()) << r.err;
        std::cout << "[ figures ] run " << run << ": " << events.back().dump() << "\n";
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(steps_taken(events), (std::vector<uint32_t>{10, 50, 100}));
        promoted += events.back()["event"] == "promote";
        EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 0}, {"v2", 100}}));
    }
    EXPECT_EQ(promoted, kRuns) << "false aborts: " << kRuns - promoted << " of " << kRuns;
}

TEST_F(RolloutTest, ARunnerKilledMidRolloutLeavesItsStepHeldAndATakeoverGoesOnFromThere) {
    serve(0);
    Child clients = load(120);
    const std::string log = write_temp_file("rollout.log", "");
    Child runner = Child::start("", {TCPSHIFT_BIN, "rollout", "tcp-echo", "--to", "v2", "--steps", "10,50,100",
                                     "--interval", "3s", "--min-connections", "100", "--netns", netns()},
                                std::chrono::milliseconds(0), log);
    // Kill it during its second step.
    json rec;
    for (int i = 0; i < 200; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const CommandResult s = rollout({"status", "tcp-echo", "--json"});
        if (s.exit_code != 0) continue;
        rec = json::parse(s.out);
        if (rec["step"] == 1 && rec["step_applied"] == true) break;
    }
    ASSERT_EQ(rec["step"], 1) << rec.dump();
    runner.stop(SIGKILL);
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 50}, {"v2", 50}})) << "held at its step";
    std::this_thread::sleep_for(std::chrono::seconds(4));  // longer than a step: nothing moves
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 50}, {"v2", 50}})) << "held at its step";
    rec = record();
    EXPECT_EQ(rec["runner_alive"], false);
    EXPECT_EQ(rec["phase"], "running");
    const CommandResult text = rollout({"status", "tcp-echo"});
    EXPECT_NE(text.out.find("held at step 2/3"), std::string::npos) << text.out;
    // A second rollout is refused while this one holds.
    EXPECT_EQ(rollout({"tcp-echo", "--to", "v2"}).exit_code, 1);

    const CommandResult resumed = rollout({"resume", "tcp-echo", "--json"});
    std::cout << "[ figures ] " << resumed.err;
    EXPECT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
    const auto events = events_of(resumed.out);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.front()["event"], "takeover") << events.front().dump();
    EXPECT_EQ(steps_taken(events), (std::vector<uint32_t>{50, 100})) << "from its step, none skipped";
    // The 50% step passed again after the takeover before 100% was installed.
    size_t pass50 = 0, step100 = 0;
    for (size_t i = 0; i < events.size(); ++i) {
        if (events[i]["event"] == "pass" && events[i]["percent"] == 50) pass50 = i;
        if (events[i]["event"] == "step" && events[i]["percent"] == 100) step100 = i;
    }
    EXPECT_GT(pass50, 0u);
    EXPECT_GT(step100, pass50);
    EXPECT_EQ(events.back()["event"], "promote");
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 0}, {"v2", 100}}));
}

TEST_F(RolloutTest, AStepWithoutTrafficWaitsAndAnAbortPutsTheStartBack) {
    serve(0);
    const std::string log = write_temp_file("rollout.log", "");
    Child runner = Child::start("", {TCPSHIFT_BIN, "rollout", "tcp-echo", "--to", "v2", "--steps", "50,100", "--interval",
                                     "1s", "--min-connections", "50", "--netns", netns()},
                                std::chrono::milliseconds(0), log);
    std::this_thread::sleep_for(std::chrono::seconds(4));  // four intervals, no connection
    json rec = record();
    EXPECT_EQ(rec["phase"], "running") << rec.dump();
    EXPECT_EQ(rec["step"], 0) << "thin data is never passed: " << rec.dump();
    EXPECT_NE(rec["live"].get<std::string>().find("0 of the 50"), std::string::npos) << rec.dump();
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 50}, {"v2", 50}}));

    const CommandResult aborted = rollout({"abort", "tcp-echo"});
    EXPECT_EQ(aborted.exit_code, 0) << aborted.err;
    const auto status = runner.wait(std::chrono::seconds(10));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 3) << *status;
    EXPECT_EQ(weights(), (std::map<std::string, uint32_t>{{"v1", 100}, {"v2", 0}}));
    EXPECT_EQ(record()["phase"], "aborted");
    // An ended rollout takes no more requests.
    EXPECT_EQ(rollout({"pause", "tcp-echo"}).exit_code, 2);
}

}  // namespace
}  // namespace tcpshift::testing
