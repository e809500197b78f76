#include "config/config.h"
#include "config/resolve.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "netns_fixture.h"
#include "test_names.h"

#include "compile/plan.h"

namespace tcpshift {
namespace {

constexpr const char* kValid = R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata:
  name: tcp-echo
spec:
  listen: ["0.0.0.0:31400", "[::]:31400"]
  affinity: source-ip
  subsets:
  - name: v1
    weight: 20
    backends: ["127.0.0.1:9001", "[::1]:9001"]
  - name: v2
    weight: 80
    backends: ["127.0.0.1:9002", "127.0.0.1:9003", "[::1]:9002"]
)";

Result<std::vector<ServiceSpec>> parse(const std::string& text, Diagnostics* diag = nullptr) {
    auto resources = parse_resources(text, "t.yaml", "default", diag);
    if (!resources) return fail(resources.error());
    return resolve_services(*resources);
}

TEST(Config, ParsesTheNativeResource) {
    auto services = parse(kValid);
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(services->size(), 1u);
    const ServiceSpec& s = (*services)[0];
    EXPECT_EQ(s.name, "tcp-echo");
    EXPECT_EQ(s.origin, "TrafficShift.tcpshift.io/default/tcp-echo");
    ASSERT_EQ(s.listen.size(), 2u);
    EXPECT_EQ(s.listen[1].str(), "[::]:31400");
    EXPECT_EQ(s.affinity, Affinity::kSourceIp);
    EXPECT_FALSE(s.takeover);
    ASSERT_EQ(s.subsets.size(), 2u);
    EXPECT_EQ(s.subsets[0].weight, 20u);
    EXPECT_EQ(s.subsets[0].weight_where.str(), "t.yaml:10");
    EXPECT_EQ(s.subsets[1].backends.size(), 3u);
}

TEST(Config, ReadsSeveralDocumentsAndSkipsKindsItDoesNotHandle) {
    const std::string text = std::string(kValid) + R"(---
apiVersion: v1
kind: ConfigMap
metadata: {name: x}
---
apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: other, namespace: prod}
spec:
  listen: ["127.0.0.1:31401"]
  subsets: [{name: a, weight: 1, backends: ["127.0.0.1:9101"]}]
)";
    Diagnostics diag;
    auto services = parse(text, &diag);
    const auto& notes = diag.notes;
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(services->size(), 2u);
    EXPECT_EQ((*services)[1].origin, "TrafficShift.tcpshift.io/prod/other");
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("t.yaml:16: skipped ConfigMap \"x\""), std::string::npos) << notes[0];
}

TEST(Config, ALoneSubsetTakesAllWithoutAWeight) {
    auto services = parse(R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: solo}
spec:
  listen: ["127.0.0.1:80"]
  subsets: [{name: only, backends: ["127.0.0.1:8080"]}]
)");
    ASSERT_TRUE(services) << services.error().message;
    EXPECT_GT((*services)[0].subsets[0].weight, 0u);
}

struct ErrorCase {
    const char* desc;
    std::string from;  // replaced in kValid ...
    std::string to;    // ... by this
    std::string want;  // fragment of the one-line error, with file:line
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.desc; }

class ConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrorTest, IsRefusedWithFileLineAndField) {
    const ErrorCase& c = GetParam();
    std::string text = kValid;
    const auto pos = text.find(c.from);
    ASSERT_NE(pos, std::string::npos) << c.desc;
    text.replace(pos, c.from.size(), c.to);
    auto services = parse(text);
    ASSERT_FALSE(services) << c.desc << " was accepted";
    EXPECT_EQ(services.error().kind, ErrorKind::kConfig);
    EXPECT_NE(services.error().message.find(c.want), std::string::npos)
        << c.desc << "\n got: " << services.error().message << "\nwant: " << c.want;
    EXPECT_EQ(services.error().message.find('\n'), std::string::npos) << "errors are one line";
}

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigErrorTest,
    ::testing::Values(
        ErrorCase{.desc = "bad address", .from = "127.0.0.1:9001", .to = "127.0.0.300:9001",
                  .want = "t.yaml:11: spec.subsets[0].backends[0]: \"127.0.0.300:9001\""},
        ErrorCase{.desc = "port 0", .from = "0.0.0.0:31400", .to = "0.0.0.0:0",
                  .want = "t.yaml:6: spec.listen[0]: \"0.0.0.0:0\": port 0 is out of range 1-65535"},
        ErrorCase{.desc = "port 65536", .from = "127.0.0.1:9002", .to = "127.0.0.1:65536",
                  .want = "t.yaml:14: spec.subsets[1].backends[0]: \"127.0.0.1:65536\": port 65536 is out of range"},
        ErrorCase{.desc = "duplicate subset", .from = "name: v2", .to = "name: v1",
                  .want = "t.yaml:12: subset \"v1\" of service \"tcp-echo\" is defined twice"},
        ErrorCase{.desc = "duplicate backend", .from = "\"127.0.0.1:9003\"", .to = "\"127.0.0.1:9001\"",
                  .want = "backend 127.0.0.1:9001 appears twice in service \"tcp-echo\""},
        ErrorCase{.desc = "duplicate frontend", .from = "\"[::]:31400\"", .to = "\"0.0.0.0:31400\"",
                  .want = "0.0.0.0:31400 is claimed by service \"tcp-echo\" and by \"tcp-echo\""},
        ErrorCase{.desc = "negative weight", .from = "weight: 20", .to = "weight: -5",
                  .want = "t.yaml:10: spec.subsets[0].weight: -5 is out of range 0-1000000"},
        ErrorCase{.desc = "huge weight", .from = "weight: 20", .to = "weight: 99999999999999999999",
                  .want = "t.yaml:10: spec.subsets[0].weight: 99999999999999999999 is out of range"},
        ErrorCase{.desc = "weight not an integer", .from = "weight: 20", .to = "weight: 2.5",
                  .want = "t.yaml:10: spec.subsets[0].weight: \"2.5\" is not an integer"},
        ErrorCase{.desc = "weight a list", .from = "weight: 20", .to = "weight: [1]",
                  .want = "t.yaml:10: spec.subsets[0].weight: must be an integer"},
        ErrorCase{.desc = "unknown top field", .from = "kind: TrafficShift\n", .to = "kind: TrafficShift\nstatus: {}\n",
                  .want = "t.yaml:3: status: unknown field; known here: apiVersion, kind, metadata, spec"},
        ErrorCase{.desc = "unknown spec field", .from = "  affinity: source-ip\n", .to = "  affinty: source-ip\n",
                  .want = "t.yaml:7: spec.affinty: unknown field; known here: listen, affinity, takeover, subsets"},
        ErrorCase{.desc = "unknown subset field", .from = "    weight: 80\n", .to = "    weight: 80\n    wieght: 1\n",
                  .want = "t.yaml:14: spec.subsets[1].wieght: unknown field"},
        ErrorCase{.desc = "bad affinity", .from = "affinity: source-ip", .to = "affinity: cookie",
                  .want = "t.yaml:7: spec.affinity: \"cookie\" is not none or source-ip"},
        ErrorCase{.desc = "wildcard backend", .from = "127.0.0.1:9001", .to = "0.0.0.0:9001",
                  .want = "a backend needs a concrete address"},
        ErrorCase{.desc = "invalid yaml", .from = "metadata:\n", .to = "metadata: [\n",
                  .want = "t.yaml:"},
        ErrorCase{.desc = "missing name", .from = "  name: tcp-echo\n", .to = "  labels: {}\n",
                  .want = "t.yaml:1: metadata.name: missing"},
        ErrorCase{.desc = "unserved version", .from = "tcpshift.io/v1alpha1", .to = "tcpshift.io/v9",
                  .want = "t.yaml:1: apiVersion: \"tcpshift.io/v9\" is not served for TrafficShift; use tcpshift.io/v1alpha1"},
        ErrorCase{.desc = "no listen", .from = "  listen: [\"0.0.0.0:31400\", \"[::]:31400\"]\n", .to = "",
                  .want = "spec.listen: needs at least one ADDRESS:PORT"},
        ErrorCase{.desc = "subset without weight", .from = "    weight: 80\n", .to = "",
                  .want = "t.yaml:12: spec.subsets[1].weight: missing"},
        ErrorCase{.desc = "subset without backends", .from = "    backends: [\"127.0.0.1:9001\", \"[::1]:9001\"]\n", .to = "",
                  .want = "t.yaml:9: spec.subsets[0].backends: needs at least one"},
        ErrorCase{.desc = "takeover not bool", .from = "  affinity: source-ip\n", .to = "  takeover: maybe\n",
                  .want = "t.yaml:7: spec.takeover: must be true or false"}),
    [](const auto& info) { return test_case_name(info.param.desc); });

TEST(Config, AllWeightsZeroIsRefused) {
    std::string text = kValid;
    text.replace(text.find("weight: 20"), 10, "weight: 0");
    text.replace(text.find("weight: 80"), 10, "weight: 0");
    auto services = parse(text);
    ASSERT_FALSE(services);
    EXPECT_NE(services.error().message.find("t.yaml:1: service \"tcp-echo\": every subset has weight 0"),
              std::string::npos)
        << services.error().message;
}

TEST(Config, EmptySubsetListIsRefused) {
    std::string text = kValid;
    text = text.substr(0, text.find("  subsets:")) + "  subsets: []\n";
    auto services = parse(text);
    ASSERT_FALSE(services);
    EXPECT_NE(services.error().message.find("spec.subsets: needs at least one subset"), std::string::npos)
        << services.error().message;
}

TEST(Config, DuplicateServiceNamesAreRefused) {
    auto services = parse(std::string(kValid) + "---\n" + kValid);
    ASSERT_FALSE(services);
    EXPECT_NE(services.error().message.find("t.yaml:16: metadata.name: service \"tcp-echo\" is defined twice; the "
                                            "other is at t.yaml:1"),
              std::string::npos)
        << services.error().message;
}

// A tcp-echo TrafficShift with these weights, as one file holds it.
std::string shift_file(int v1, int v2) {
    return "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: tcp-echo}\nspec:\n"
           "  listen: [\"127.0.0.1:31400\"]\n  subsets:\n"
           "  - {name: v1, weight: " + std::to_string(v1) + ", backends: [\"127.0.0.1:9001\"]}\n"
           "  - {name: v2, weight: " + std::to_string(v2) + ", backends: [\"127.0.0.1:9002\"]}\n";
}

uint32_t v1_weight(const std::vector<Resource>& resources) {
    auto services = resolve_services(resources);
    EXPECT_TRUE(services) << services.error().message;
    return services ? (*services)[0].subsets[0].weight : 0;
}

TEST(LoadOrder, ALaterFileReplacesAResourceInPlaceWithANote) {
    const std::string other =
        "---\napiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: other}\n"
        "spec: {listen: [\"127.0.0.1:31401\"], subsets: [{name: a, backends: [\"127.0.0.1:9101\"]}]}\n";
    const auto a = testing::write_temp_file("a.yaml", shift_file(20, 80) + other);
    const auto b = testing::write_temp_file("b.yaml", shift_file(50, 50));
    Diagnostics diag;
    auto resources = load_resources({a, b}, "default", &diag);
    ASSERT_TRUE(resources) << resources.error().message;
    ASSERT_EQ(resources->size(), 2u);
    EXPECT_EQ((*resources)[0].where.str(), b + ":1") << "the later definition takes the earlier one's place";
    EXPECT_EQ((*resources)[1].name, "other");
    EXPECT_EQ(v1_weight(*resources), 50u);
    ASSERT_EQ(diag.notes.size(), 1u);
    EXPECT_EQ(diag.notes[0], b + ":1: TrafficShift \"tcp-echo\" in namespace default replaces the one at " + a +
                                 ":1 (a later -f wins, as with kubectl apply)");

    diag = {};
    resources = load_resources({b, a}, "default", &diag);
    ASSERT_TRUE(resources) << resources.error().message;
    EXPECT_EQ(v1_weight(*resources), 20u) << "the order of -f decides, not the names";
}

TEST(LoadOrder, ADirectoryAppliesItsFilesInNameOrder) {
    const std::filesystem::path dir = testing::write_temp_file("config.d", "") + ".d";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "20-v2.yaml") << shift_file(20, 80);  // written first, applied last
    std::ofstream(dir / "10-all-v1.yaml") << shift_file(100, 0);
    Diagnostics diag;
    auto resources = load_resources({dir.string()}, "default", &diag);
    ASSERT_TRUE(resources) << resources.error().message;
    ASSERT_EQ(resources->size(), 1u);
    EXPECT_EQ(v1_weight(*resources), 20u);
    ASSERT_EQ(diag.notes.size(), 1u);
    EXPECT_EQ(diag.notes[0], (dir / "20-v2.yaml").string() +
                                 ":1: TrafficShift \"tcp-echo\" in namespace default replaces the one at " +
                                 (dir / "10-all-v1.yaml").string() +
                                 ":1 (a directory's files apply in name order, the later wins, as with kubectl apply)");
}

TEST(LoadOrder, TheSameFileTwiceReplacesWithoutANote) {
    const auto a = testing::write_temp_file("a.yaml", shift_file(20, 80));
    Diagnostics diag;
    auto resources = load_resources({a, a}, "default", &diag);
    ASSERT_TRUE(resources) << resources.error().message;
    EXPECT_EQ(resources->size(), 1u);
    EXPECT_TRUE(diag.notes.empty()) << diag.notes[0];
}

// Within one file nothing orders two definitions but their lines, and the first would be
// dead text that `explain` still cites: a copy left behind, most likely. Refused.
TEST(LoadOrder, AResourceDefinedTwiceInOneFileIsRefused) {
    const auto a = testing::write_temp_file("a.yaml", shift_file(20, 80) + "---\n" + shift_file(50, 50));
    auto resources = load_resources({a}, "default", nullptr);
    ASSERT_FALSE(resources);
    EXPECT_EQ(resources.error().kind, ErrorKind::kConfig);
    EXPECT_EQ(resources.error().message, a + ":10: TrafficShift \"tcp-echo\" in namespace default is defined twice "
                                             "in this file; the other is at " + a +
                                             ":1 (only a later file or -f may replace it)");
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

TEST(Plan, SharesFollowWeightsAndSplitASubsetEvenly) {
    auto services = parse(kValid);
    ASSERT_TRUE(services);
    auto plan = compile_plan(*services, {}, default_limits());
    ASSERT_TRUE(plan) << plan.error().message;
    const PlanService& s = plan->services[0];
    EXPECT_DOUBLE_EQ(s.subsets[0].share, 0.2);
    EXPECT_DOUBLE_EQ(s.subsets[1].backends[0].share, 0.4);
    EXPECT_DOUBLE_EQ(s.subsets[1].backends[1].share, 0.4);
    EXPECT_EQ(s.tables[0].weighted_backends.size(), 3u);
}

TEST(Plan, IdsAreStableAcrossCompiles) {
    auto services = parse(kValid);
    ASSERT_TRUE(services);
    IdAssignment previous{.services = {{"tcp-echo", 7}}, .backends = {{"127.0.0.1:9002", 3}}};
    auto plan = compile_plan(*services, previous, default_limits());
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->services[0].id, 7u);
    EXPECT_EQ(plan->ids.backends.at("127.0.0.1:9002"), 3u);
    EXPECT_EQ(plan->ids.backends.at("127.0.0.1:9001"), 0u);
    EXPECT_EQ(plan->ids.backends.at("[::1]:9001"), 1u);
    EXPECT_EQ(plan->ids.backends.at("127.0.0.1:9003"), 2u);
}

TEST(Plan, ZeroWeightSubsetGetsNoSlotAndNoFallback) {
    std::string text = kValid;
    text.replace(text.find("weight: 20"), 10, "weight: 0");
    auto services = parse(text);
    ASSERT_TRUE(services);
    auto plan = compile_plan(*services, {}, default_limits());
    ASSERT_TRUE(plan);
    const uint32_t v1 = plan->ids.backends.at("127.0.0.1:9001");
    for (uint16_t slot : plan->services[0].tables[0].slots) EXPECT_NE(slot, v1);
    for (uint16_t b : plan->services[0].tables[0].weighted_backends) EXPECT_NE(b, v1);
}

TEST(Plan, RefusesMoreThanTheMapsHold) {
    auto services = parse(kValid);
    ASSERT_TRUE(services);
    PlanLimits small = default_limits();
    small.max_service_backends = 2;
    auto plan = compile_plan(*services, {}, small);
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.error().message.find("has 5 backends; a service holds at most 2"), std::string::npos)
        << plan.error().message;
    small = default_limits();
    small.max_services = 0;
    EXPECT_FALSE(compile_plan(*services, {}, small));
}

TEST(Plan, HoldsTheDocumentedLimits) {
    // 256 services, each with 16 subsets of 16 backends would exceed 4096 backends; the
    // documented limits are 256 services per namespace and 16 x 16 backends per service.
    std::string text;
    for (int s = 0; s < 256; ++s) {
        text += "---\napiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: svc" + std::to_string(s) +
                "}\nspec:\n  listen: [\"127.0.0.1:" + std::to_string(10000 + s) + "\"]\n  subsets:\n";
        const int subsets = s == 0 ? 16 : 1;
        for (int k = 0; k < subsets; ++k) {
            text += "  - name: s" + std::to_string(k) + "\n    weight: 1\n    backends: [";
            const int backends = s == 0 ? 16 : 2;
            for (int b = 0; b < backends; ++b)
                text += std::string(b ? ", " : "") + "\"127.1." + std::to_string(s) + "." + std::to_string(k * 16 + b) +
                        ":9000\"";
            text += "]\n";
        }
    }
    auto services = parse(text);
    ASSERT_TRUE(services) << services.error().message;
    auto plan = compile_plan(*services, {}, default_limits());
    ASSERT_TRUE(plan) << plan.error().message;
    EXPECT_EQ(plan->services.size(), 256u);
    EXPECT_EQ(plan->services[0].tables[0].weighted_backends.size(), 256u);
}

}  // namespace
}  // namespace tcpshift
