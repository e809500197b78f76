// The simulated node of the connect-time tests, checked without tcpshift: a client pod inside
// the test cgroup reaches pods on its node and on a second node over IPv4 and IPv6, and
// nothing of the fixture outlives it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "netns_fixture.h"
#include "pod_fixture.h"

namespace tcpshift::testing {
namespace {

constexpr uint16_t kPort = 9000;
constexpr uint64_t kConnections = 200;

// The cgroup2 line of /proc/self/cgroup as the process itself reads it: "0::/PATH".
std::string cgroup2_line(const std::string& proc_self_cgroup) {
    std::istringstream lines(proc_self_cgroup);
    for (std::string line; std::getline(lines, line);)
        if (line.starts_with("0::")) return line;
    return "";
}

// An echo backend on a pod, answering "WORD line" on both its addresses.
struct Backend {
    Pod pod;
    std::string word;
};

std::vector<Child> start_backends(const std::vector<Backend>& backends) {
    std::vector<Child> servers;
    for (const auto& b : backends) {
        servers.push_back(
            start_echo(b.pod.netns, b.pod.ipv4_endpoint(kPort), b.word, {"--listen", b.pod.ipv6_endpoint(kPort)}));
        EXPECT_TRUE(servers.back().first_line().starts_with("listening on")) << b.word << " did not start";
    }
    return servers;
}

// Every backend answers every connection of a load generator in the client pod and the
// cgroup, over IPv4 and over IPv6.
void expect_every_backend_answers(const Pod& client, const TestCgroup& cgroup, const std::vector<Backend>& backends) {
    struct Case {
        std::string desc;
        std::string target;
        std::string word;
    };
    std::vector<Case> cases;
    for (const auto& b : backends) {
        cases.push_back({.desc = b.word + " over IPv4", .target = b.pod.ipv4_endpoint(kPort), .word = b.word});
        cases.push_back({.desc = b.word + " over IPv6", .target = b.pod.ipv6_endpoint(kPort), .word = b.word});
    }
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        // CPU time charged to the cgroup while the load ran is the load generator's own.
        const uint64_t cpu_before = cgroup.cpu_usage_usec();
        const auto summary =
            run_loadgen(client.netns, cgroup.path(), {.target = c.target, .connections = kConnections});
        EXPECT_EQ(summary.value("ok", uint64_t{0}), kConnections) << summary.dump();
        EXPECT_EQ(summary.value("failed", uint64_t{1}), 0u) << summary.dump();
        EXPECT_EQ(summary.value("by_reply", nlohmann::json::object()), nlohmann::json({{c.word, kConnections}}))
            << summary.dump();
        EXPECT_GT(cgroup.cpu_usage_usec(), cpu_before) << "the load generator ran outside " << cgroup.path();
    }
}

void expect_gone(const std::vector<std::string>& namespaces, const std::string& cgroup_path) {
    for (const auto& ns : namespaces)
        EXPECT_FALSE(std::filesystem::exists("/var/run/netns/" + ns)) << ns << " outlived the fixture";
    if (!cgroup_path.empty()) {
        EXPECT_FALSE(std::filesystem::exists(cgroup_path)) << cgroup_path << " outlived the fixture";
    }
}

TEST(PodFixture, AClientPodInTheTestCgroupReachesPodsOnBothNodes) {
    TCPSHIFT_REQUIRE_ROOT();
    std::vector<std::string> namespaces;
    std::string cgroup_path;
    {
        PodNode node;
        std::vector<Backend> backends{{node.add_pod("one", 11), "one"}, {node.add_pod("two", 12), "two"}};
        const Pod client = node.add_pod("client", 100);
        node.add_remote_node();
        backends.push_back({node.add_remote_pod("three", 21), "three"});
        namespaces = node.namespaces();
        ASSERT_TRUE(node.ok()) << node.error();
        TestCgroup cgroup;
        cgroup_path = cgroup.path();
        ASSERT_TRUE(cgroup.ok()) << cgroup.error();
        const std::vector<Child> servers = start_backends(backends);
        ASSERT_FALSE(HasFailure());

        // The child itself reports its cgroup: the join happens between fork and exec.
        const auto self = run_in(client.netns, cgroup.path(), {"/bin/cat", "/proc/self/cgroup"});
        ASSERT_EQ(self.exit_code, 0) << self.err;
        EXPECT_TRUE(cgroup2_line(self.out).ends_with("/" + cgroup.name())) << self.out;

        expect_every_backend_answers(client, cgroup, backends);
        EXPECT_TRUE(cgroup.procs().empty()) << "the clients are done; nothing of theirs stays in the cgroup";
    }
    EXPECT_EQ(namespaces.size(), 6u);  // node, three pods, node2, its pod
    expect_gone(namespaces, cgroup_path);
}

// A setup that fails stops there, names the failing command, and still leaves nothing behind.
TEST(PodFixture, ASetupFailureNamesItsCauseAndLeavesNothing) {
    TCPSHIFT_REQUIRE_ROOT();
    struct Case {
        std::string desc;
        void (*break_it)(PodNode&);
        std::string error;
    };
    const std::vector<Case> cases{
        {.desc = "two pods of one index",
         .break_it =
             [](PodNode& n) {
                 n.add_pod("a", 11);
                 n.add_pod("b", 11);
             },
         .error = "peer name vp11"},
        {.desc = "an index outside the range",
         .break_it = [](PodNode& n) { n.add_pod("a", 255); },
         .error = "index 255 is outside 2-254"},
        {.desc = "a remote pod without the remote node",
         .break_it = [](PodNode& n) { n.add_remote_pod("a", 21); },
         .error = "add_remote_node() first"},
        {.desc = "a second remote node",
         .break_it =
             [](PodNode& n) {
                 n.add_remote_node();
                 n.add_remote_node();
             },
         .error = "exists already"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        std::vector<std::string> namespaces;
        {
            PodNode node;
            ASSERT_TRUE(node.ok()) << node.error();
            c.break_it(node);
            EXPECT_FALSE(node.ok());
            EXPECT_NE(node.error().find(c.error), std::string::npos) << node.error();
            const auto made = node.namespaces().size();
            node.add_pod("after", 50);
            EXPECT_EQ(node.namespaces().size(), made) << "a step after a failure ran";
            namespaces = node.namespaces();
        }
        expect_gone(namespaces, "");
    }
}

// A process the test left in the cgroup dies with it.
TEST(PodFixture, TheCgroupKillsWhatIsLeftInIt) {
    TCPSHIFT_REQUIRE_ROOT();
    Child sleeper;
    std::string path;
    {
        TestCgroup cgroup;
        ASSERT_TRUE(cgroup.ok()) << cgroup.error();
        path = cgroup.path();
        sleeper = Child::start("", {"/bin/sleep", "30"}, std::chrono::milliseconds(0), "", cgroup.path());
        ASSERT_TRUE(sleeper.running());
        for (int i = 0; i < 100 && cgroup.procs().empty(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        EXPECT_EQ(cgroup.procs(), std::vector<pid_t>{sleeper.pid()});
    }
    expect_gone({}, path);
    const auto status = sleeper.wait(std::chrono::seconds(2));
    ASSERT_TRUE(status.has_value()) << "the process left in the cgroup still runs";
    EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
}

}  // namespace
}  // namespace tcpshift::testing
