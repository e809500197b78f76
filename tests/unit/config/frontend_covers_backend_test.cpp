// A frontend that covers a backend (its address, or its family's wildcard on its port) would
// take the clients that connect to that backend directly; only a takeover may.
#include <gtest/gtest.h>

#include "config/config.h"
#include "config/resolve.h"
#include "test_names.h"

namespace tcpshift {
namespace {

Result<std::vector<ServiceSpec>> parse(const std::string& text, Diagnostics* diag = nullptr) {
    auto resources = parse_resources(text, "t.yaml", "default", diag);
    if (!resources) return fail(resources.error());
    return resolve_services(*resources);
}

// Service "cache" puts its frontend somewhere near tcp-echo's backends, 127.0.0.1:9001 and
// [::1]:9002; its own backend is 127.0.0.1:9003.
std::string cache_beside_tcp_echo(const std::string& listen, bool takeover) {
    return std::string(R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: tcp-echo}
spec:
  listen: ["127.0.0.1:31400"]
  subsets:
  - {name: v1, weight: 20, backends: ["127.0.0.1:9001"]}
  - {name: v2, weight: 80, backends: ["[::1]:9002"]}
---
apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: cache}
spec:
  listen: [")") + listen + R"("]
  takeover: )" + (takeover ? "true" : "false") + R"(
  subsets: [{name: main, backends: ["127.0.0.1:9003"]}]
)";
}

struct CoverCase {
    const char* desc;
    std::string listen;  // service cache's frontend
    bool takeover = false;
    std::string want;  // fragment of the error; empty when the set is accepted
};

void PrintTo(const CoverCase& c, std::ostream* os) { *os << c.desc; }

class FrontendCoversBackendTest : public ::testing::TestWithParam<CoverCase> {};

// A frontend takes every new connection to its address and port, so one that covers a
// backend takes the clients that connect to that backend directly (a `redis-cli -p PORT`).
// That is a takeover, and only a service that says `takeover: true` may do it.
TEST_P(FrontendCoversBackendTest, IsRefusedUnlessTakeover) {
    const CoverCase& c = GetParam();
    auto services = parse(cache_beside_tcp_echo(c.listen, c.takeover));
    if (c.want.empty()) {
        EXPECT_TRUE(services) << c.desc << ": " << services.error().message;
        return;
    }
    ASSERT_FALSE(services) << c.desc << " was accepted";
    EXPECT_EQ(services.error().kind, ErrorKind::kConfig);
    EXPECT_NE(services.error().message.find(c.want), std::string::npos)
        << c.desc << "\n got: " << services.error().message << "\nwant: " << c.want;
    EXPECT_EQ(services.error().message.find('\n'), std::string::npos) << "errors are one line";
}

INSTANTIATE_TEST_SUITE_P(
    Table, FrontendCoversBackendTest,
    ::testing::Values(
        CoverCase{.desc = "another service's backend address", .listen = "127.0.0.1:9001",
                  .want = "t.yaml:14: service \"cache\": frontend 127.0.0.1:9001 covers backend 127.0.0.1:9001 of "
                          "service \"tcp-echo\" (t.yaml:7): clients that connect to that backend would be steered to "
                          "\"cache\" instead; move one of them to another port, or set spec.takeover: true to steer "
                          "them anyway"},
        CoverCase{.desc = "IPv4 wildcard on its port", .listen = "0.0.0.0:9001",
                  .want = "frontend 0.0.0.0:9001 covers backend 127.0.0.1:9001 of service \"tcp-echo\""},
        CoverCase{.desc = "IPv6 wildcard on an IPv6 backend's port", .listen = "[::]:9002",
                  .want = "frontend [::]:9002 covers backend [::1]:9002 of service \"tcp-echo\""},
        // sk_lookup looks an IPv4 connection up among IPv4 frontends only.
        CoverCase{.desc = "IPv6 wildcard on an IPv4 backend's port", .listen = "[::]:9001"},
        CoverCase{.desc = "IPv4 wildcard on an IPv6 backend's port", .listen = "0.0.0.0:9002"},
        CoverCase{.desc = "another address on the port", .listen = "127.0.0.2:9001"},
        CoverCase{.desc = "takeover", .listen = "0.0.0.0:9001", .takeover = true},
        CoverCase{.desc = "its own backend", .listen = "0.0.0.0:9003",
                  .want = "t.yaml:14: service \"cache\": frontend 0.0.0.0:9003 covers its own backend 127.0.0.1:9003 "
                          "(t.yaml:16): clients that connect to that backend would be steered by weight too; move one "
                          "of them to another port, or set spec.takeover: true to steer them anyway"},
        CoverCase{.desc = "its own backend with takeover", .listen = "127.0.0.1:9003", .takeover = true}),
    [](const auto& info) { return test_case_name(info.param.desc); });

TEST(Config, TakeoverOnTheCoveredServiceDoesNotLetAnotherTakeItsBackend) {
    std::string text = cache_beside_tcp_echo("0.0.0.0:9001", false);
    text.replace(text.find("  subsets:\n"), 0, "  takeover: true\n");
    auto services = parse(text);
    ASSERT_FALSE(services);
    EXPECT_NE(services.error().message.find("service \"cache\": frontend 0.0.0.0:9001 covers backend"),
              std::string::npos)
        << services.error().message;
}

}  // namespace
}  // namespace tcpshift
