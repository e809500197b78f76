// Which path reaches a backend follows where its address is, and whom connect-time steering
// serves follows attach --client-netns: both are the kernel's truth, shown by status.
#include <gtest/gtest.h>

#include "connect_fixture.h"

namespace tcpshift::testing {

namespace {

// The path status --json gives each backend address.
std::map<std::string, std::string> paths(const AttachedNode& node) {
    const auto status = node.tcpshift_node({"status", "--json"});
    EXPECT_EQ(status.exit_code, 0) << status.err;
    std::map<std::string, std::string> out;
    if (status.exit_code != 0) return out;
    const auto j = nlohmann::json::parse(status.out);
    for (const auto& svc : j["services"])
        for (const auto& subset : svc["subsets"])
            for (const auto& b : subset["backends"]) out[b["address"].get<std::string>()] = b["path"].get<std::string>();
    return out;
}

}  // namespace

// A backend whose address nobody holds is connect-time; once the node holds it and a
// server listens there, applying the same file again moves it to the socket path, and
// the kernel says so.
TEST_F(ConnectTest, ABackendWhoseAddressComesToTheNodeMovesToTheSocketPathOnTheNextApply) {
    TCPSHIFT_REQUIRE_ROOT();
    const std::string yaml = traffic_shift(
        "tcp-echo", {kFrontendV4}, {{"v1", 50, {"10.244.0.11:9000"}}, {"v2", 50, {"10.244.0.77:9000"}}});
    node().apply(yaml);
    EXPECT_EQ(paths(node())["10.244.0.77:9000"], "connect-time");

    ASSERT_EQ(run_command({"/sbin/ip", "-n", node().netns(), "addr", "add", "10.244.0.77/32", "dev", "lo"}).exit_code, 0);
    ASSERT_EQ(run_command({"/sbin/ip", "-n", node().netns(), "addr", "add", "10.96.0.50/32", "dev", "lo"}).exit_code, 0);
    Child local = Child::start(node().netns(), {TCPSHIFT_ECHO_BIN, "--listen", "10.244.0.77:9000", "--prefix", "local"},
                               std::chrono::seconds(5), "", node().cgroup().path());
    ASSERT_TRUE(local.first_line().starts_with("listening on")) << local.first_line();
    node().apply(yaml);
    const auto now = paths(node());
    EXPECT_EQ(now.at("10.244.0.77:9000"), "socket");
    EXPECT_EQ(now.at("10.244.0.11:9000"), "connect-time");
    const auto verify = node().tcpshift_node({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

    ASSERT_TRUE(answers(node(), kFrontendV4));
    const auto summary = node().load(kFrontendV4, 1000);
    expect_all_answered(summary, 1000);
    expect_split(summary, {"one", "local"}, {50, 50});
}

// attach --client-netns narrows connect-time steering to the named client namespaces: a pod
// outside them reaches the frontend unrewritten (nothing serves it there), and nothing of it
// is counted.
TEST_F(ConnectTest, ClientNetnsNarrowsConnectTimeSteeringToTheNamedNamespaces) {
    TCPSHIFT_REQUIRE_ROOT();
    ASSERT_TRUE(node().detach());
    const Pod other = node().pods().add_pod("other", 101);
    ASSERT_TRUE(node().pods().ok()) << node().pods().error();
    const auto attach = node().tcpshift_node(
        {"attach", "--cgroup", node().cgroup().path(), "--client-netns", node().client().netns});
    ASSERT_EQ(attach.exit_code, 0) << attach.err;
    node().apply(traffic_shift("tcp-echo", {kFrontendV4},
                               {{"v1", 20, {"10.244.0.11:9000"}}, {"v2", 80, {"10.244.0.12:9000"}}}));

    const auto before = node().stats();
    const auto outside = node().load(
        {.target = kFrontendV4, .connections = 10, .concurrency = 2, .extra = {"--timeout-ms", "500"}}, &other);
    EXPECT_EQ(outside.value("ok", uint64_t{1}), 0u) << "a pod outside --client-netns was steered: " << outside.dump();
    EXPECT_EQ(connect_rewrites(node().stats()), connect_rewrites(before));
    ASSERT_TRUE(answers(node(), kFrontendV4));
    const auto summary = node().load(kFrontendV4, 1000);
    expect_all_answered(summary, 1000);
    expect_split(summary, {"one", "two"}, {20, 80});
    const auto after = node().stats();
    // answers() made 20 connections of its own from the client pod.
    EXPECT_EQ(connect_rewrites(after) - connect_rewrites(before), 1020u);
    const auto detach = node().tcpshift_node({"detach"});
    EXPECT_EQ(detach.exit_code, 0) << detach.err;
}

}  // namespace tcpshift::testing
