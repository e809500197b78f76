// One service with both paths at once: a backend listening in the node's own namespace
// (socket steering, by sk_lookup) and two pod backends (connect-time steering). A client in
// the cgroup, in the node's namespace or in a pod, splits by weight over all three; a draw
// that lands on the local backend leaves connect() alone, and sk_lookup takes it.
#include <gtest/gtest.h>

#include "connect_fixture.h"

namespace tcpshift::testing {
namespace {

constexpr uint64_t kConnections = 2000;
constexpr const char* kLocalBackend = "127.0.0.1:9001";

std::string three_way_service() {
    return traffic_shift("tcp-echo", {kFrontendV4},
                         {{.name = "local", .weight = 20, .backends = {kLocalBackend}},
                          {.name = "v1", .weight = 30, .backends = {"10.244.0.11:9000"}},
                          {.name = "v2", .weight = 50, .backends = {"10.244.0.12:9000"}}});
}

uint64_t lookups(const nlohmann::json& stats) {
    uint64_t n = 0;
    for (const auto& s : stats.value("services", nlohmann::json::array())) n += s.value("lookups", uint64_t{0});
    return n;
}

// Each backend's path as status --json names it, by address.
std::map<std::string, std::string> paths(const AttachedNode& node) {
    const auto r = node.tcpshift_node({"status", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, std::string> path_of;
    const auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded()) return path_of;
    for (const auto& svc : j.value("services", nlohmann::json::array()))
        for (const auto& subset : svc["subsets"])
            for (const auto& b : subset["backends"])
                path_of[b["address"].get<std::string>()] = b["path"].get<std::string>();
    return path_of;
}

TEST_F(ConnectTest, ALocalSocketBackendAndPodBackendsShareOneServiceByWeight) {
    TCPSHIFT_REQUIRE_ROOT();
    // In the cgroup too: sock_ops there counts the connections a backend accepts.
    const Child local =
        Child::start(node().netns(), {TCPSHIFT_ECHO_BIN, "--listen", kLocalBackend, "--prefix", "local"},
                     std::chrono::seconds(5), "", node().cgroup().path());
    ASSERT_TRUE(local.first_line().starts_with("listening on"));
    // Socket steering takes connections that arrive here: the native form asks for the
    // frontend's address on an interface of the node (apply warns when it is not).
    const auto addr = run_command({"/sbin/ip", "-n", node().netns(), "addr", "add", "10.96.0.50/32", "dev", "lo"});
    ASSERT_EQ(addr.exit_code, 0) << addr.err;
    node().apply(three_way_service());
    const std::map<std::string, std::string> expected_paths{
        {kLocalBackend, "socket"}, {"10.244.0.11:9000", "connect-time"}, {"10.244.0.12:9000", "connect-time"}};
    EXPECT_EQ(paths(node()), expected_paths);

    // The node's own namespace, as a Pod: a client there runs on the node itself.
    const Pod on_node{.netns = node().netns()};
    struct Case {
        std::string desc;
        const Pod* from;
    };
    const std::vector<Case> cases{{.desc = "a client in the node's namespace", .from = &on_node},
                                  {.desc = "a client pod", .from = &node().client()}};
    const std::map<std::string, std::string> word_of{
        {kLocalBackend, "local"}, {"10.244.0.11:9000", "one"}, {"10.244.0.12:9000", "two"}};
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        ASSERT_TRUE(answers(node(), kFrontendV4, c.from));
        const auto before = node().stats();
        const auto summary = node().load(kFrontendV4, kConnections, c.from);
        const auto after = node().stats();
        expect_all_answered(summary, kConnections);
        expect_split(summary, {"local", "one", "two"}, {20, 30, 50});
        expect_opened_match_replies(before, after, word_of, summary);
        // Rewritten connect()s went to the pods; the rest came to sk_lookup.
        EXPECT_EQ(connect_rewrites(after) - connect_rewrites(before), replies(summary, "one") + replies(summary, "two"))
            << after.dump();
        EXPECT_EQ(lookups(after) - lookups(before), replies(summary, "local")) << after.dump();
    }
}

}  // namespace
}  // namespace tcpshift::testing
