// Detach leaves nothing of connect-time steering: no program on the cgroup, the programs
// themselves freed, and a connect() to the frontend no longer rewritten.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "connect_fixture.h"

namespace tcpshift::testing {
namespace {

const std::set<std::string> kConnectPrograms{"connect_v4", "connect_v6", "getpeername_v4", "getpeername_v6"};

nlohmann::json bpftool_json(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"/usr/sbin/bpftool", "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = run_command(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    return j.is_discarded() ? nlohmann::json::array() : j;
}

// The ids of the programs attached to the cgroup, by name.
std::map<std::string, uint64_t> cgroup_programs(const std::string& cgroup) {
    std::map<std::string, uint64_t> ids;
    for (const auto& p : bpftool_json({"cgroup", "show", cgroup})) ids[p.value("name", "")] = p.value("id", 0);
    return ids;
}

// Which of `ids` the kernel still holds as programs.
std::set<uint64_t> loaded(const std::set<uint64_t>& ids) {
    std::set<uint64_t> left;
    for (const auto& p : bpftool_json({"prog", "show"}))
        if (ids.count(p.value("id", uint64_t{0}))) left.insert(p.value("id", uint64_t{0}));
    return left;
}

TEST_F(ConnectTest, DetachLeavesNoProgramAndNoRewrite) {
    TCPSHIFT_REQUIRE_ROOT();
    node().apply(
        traffic_shift("tcp-echo", {kFrontendV4, kFrontendV6},
                      {{.name = "v1", .weight = 50, .backends = {"10.244.0.11:9000", "[fd00:244::11]:9000"}},
                       {.name = "v2", .weight = 50, .backends = {"10.244.0.12:9000", "[fd00:244::12]:9000"}}}));
    const auto attached = cgroup_programs(node().cgroup().path());
    std::set<uint64_t> ours;
    for (const auto& name : kConnectPrograms) {
        ASSERT_TRUE(attached.count(name)) << name << " is not on " << node().cgroup().path();
        ours.insert(attached.at(name));
    }
    ASSERT_TRUE(answers(node(), kFrontendV4));
    ASSERT_TRUE(answers(node(), kFrontendV6));

    ASSERT_TRUE(node().detach());
    EXPECT_EQ(cgroup_programs(node().cgroup().path()), (std::map<std::string, uint64_t>{}));
    // A program is freed once its last link and pin are gone, which may take a moment.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!loaded(ours).empty() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(loaded(ours), std::set<uint64_t>{}) << "programs still loaded 5 s after detach";

    // Nothing serves the frontend's address: an unrewritten connect() fails.
    for (const char* target : {kFrontendV4, kFrontendV6}) {
        SCOPED_TRACE(target);
        const auto summary =
            node().load({.target = target, .connections = 20, .concurrency = 4, .extra = {"--timeout-ms", "500"}});
        EXPECT_EQ(summary.value("ok", uint64_t{1}), 0u) << summary.dump();
        EXPECT_EQ(summary.value("failed", uint64_t{0}), 20u) << summary.dump();
    }
}

}  // namespace
}  // namespace tcpshift::testing
