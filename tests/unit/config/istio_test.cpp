// Istio documents, shaped like those of its API reference, resolved into services: the
// tcp-echo task, routes and matches, affinity, every error and every weight rule.
#include <gtest/gtest.h>

#include "compile/plan.h"
#include "mesh_documents.h"
#include "netns_fixture.h"
#include "test_names.h"

namespace tcpshift {
namespace {

using namespace mesh_testing;

TEST(Istio, TheTrafficShiftingTaskResolves) {
    auto services = resolve(task());
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(services->size(), 1u);
    const ServiceSpec& s = (*services)[0];
    EXPECT_EQ(s.name, "tcp-echo-routing");
    EXPECT_EQ(s.origin.str(), "VirtualService.networking.istio.io/shift/tcp-echo-routing");
    // The Gateway implies both wildcards; every workload is IPv4, so [::] is not kept: its
    // clients would be reset.
    ASSERT_EQ(s.listen.size(), 1u);
    EXPECT_EQ(s.listen[0].str(), "0.0.0.0:31400");
    ASSERT_EQ(s.subsets.size(), 2u);
    EXPECT_EQ(s.subsets[0].name, "v1");
    EXPECT_EQ(s.subsets[0].weight, 20u);
    ASSERT_EQ(s.subsets[0].backends.size(), 1u);
    EXPECT_EQ(s.subsets[0].backends[0].str(), "127.0.0.2:9000");
    EXPECT_EQ(s.subsets[1].backends[0].str(), "127.0.0.3:9000");
    EXPECT_EQ(s.subsets[1].weight_path, (std::vector<std::string>{"spec", "tcp", "0", "route", "1", "weight"}));
    EXPECT_TRUE(s.local_addresses.empty());
}

// Istio's tcp-echo task in the shape of its sample files: tcp-echo-all-v1.yaml (the Gateway,
// the DestinationRule and a VirtualService that sends everything to v1), then
// tcp-echo-20-v2.yaml (the same VirtualService, 80/20). Given to one apply, the later file's
// VirtualService is the one that counts, as with kubectl apply.
TEST(Istio, TheTasksSampleFilesInOneApplyTakeTheLaterVirtualService) {
    const std::string vs_head = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo, namespace: shift}
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
  - match: [{port: 31400}]
    route:
)";
    const std::string to = "    - {destination: {host: tcp-echo, port: {number: 9000}, subset: ";
    const std::string all_v1 = docs({kGateway, kDestinationRule, vs_head + to + "v1}}\n"});
    const std::string v2_20 = vs_head + to + "v1}, weight: 80}\n" + to + "v2}, weight: 20}\n";
    const auto workloads = testing::write_temp_file("workloads.yaml", kWorkloads);
    const auto first = testing::write_temp_file("tcp-echo-all-v1.yaml", all_v1);
    const auto later = testing::write_temp_file("tcp-echo-20-v2.yaml", v2_20);
    Diagnostics diag;
    auto resources = load_resources({workloads, first, later}, "default", &diag);
    ASSERT_TRUE(resources) << resources.error().message;
    auto services = resolve_services(*resources, &diag);
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(services->size(), 1u);
    ASSERT_EQ((*services)[0].subsets.size(), 2u);
    EXPECT_EQ((*services)[0].subsets[0].weight, 80u);
    EXPECT_EQ((*services)[0].subsets[1].weight, 20u);
    EXPECT_EQ((*services)[0].subsets[1].weight_where.file, later);
    ASSERT_EQ(diag.notes.size(), 1u);
    EXPECT_EQ(diag.notes[0], later + ":1: VirtualService \"tcp-echo\" in namespace shift replaces the one at " +
                                 first + ":19 (a later -f wins, as with kubectl apply)");
}

TEST(Istio, EveryServedVersionIsAccepted) {
    for (const char* version : {"v1alpha3", "v1beta1", "v1"}) {
        std::string text = task();
        const std::string from = "networking.istio.io/v1alpha3", to = std::string("networking.istio.io/") + version;
        for (size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size())
            text.replace(pos, from.size(), to);
        auto services = resolve(text);
        EXPECT_TRUE(services) << version << ": " << services.error().message;
    }
}

TEST(Istio, ADestinationWithoutSubsetTakesEveryWorkloadEqually) {
    const std::string vs = R"(apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: tcp-echo, namespace: shift}
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
  - match: [{port: 31400}]
    route:
    - destination: {host: tcp-echo, port: {number: 9000}}
)";
    auto services = resolve(docs({kWorkloads, kGateway, vs}));
    ASSERT_TRUE(services) << services.error().message;
    auto plan = compile_plan(*services, {}, default_limits());
    ASSERT_TRUE(plan);
    const PlanSubset& only = plan->services[0].subsets[0];
    EXPECT_EQ(only.name, "tcp-echo");
    EXPECT_DOUBLE_EQ(only.share, 1.0) << "a lone destination takes all";
    ASSERT_EQ(only.backends.size(), 2u);
    EXPECT_DOUBLE_EQ(only.backends[0].share, 0.5);
}

TEST(Istio, SharesAreWeightOverSumAndZeroTakesNothing) {
    std::string vs = replaced(replaced(kVirtualService, "weight: 20", "weight: 1"), "weight: 80", "weight: 3");
    auto services = resolve(docs({kWorkloads, kGateway, kDestinationRule, vs}));
    ASSERT_TRUE(services) << services.error().message;
    auto plan = compile_plan(*services, {}, default_limits());
    ASSERT_TRUE(plan);
    EXPECT_DOUBLE_EQ(plan->services[0].subsets[0].share, 0.25);
    vs = replaced(kVirtualService, "weight: 20", "weight: 0");
    services = resolve(docs({kWorkloads, kGateway, kDestinationRule, vs}));
    ASSERT_TRUE(services);
    plan = compile_plan(*services, {}, default_limits());
    EXPECT_EQ(plan->services[0].tables[0].weighted_backends.size(), 1u);
}

TEST(Istio, TheFirstMatchingRouteWins) {
    const std::string vs = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: two-routes, namespace: shift}
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
  - match: [{port: 31400}]
    route: [{destination: {host: tcp-echo, port: {number: 9000}, subset: v1}}]
  - route: [{destination: {host: tcp-echo, port: {number: 9000}, subset: v2}}]
)";
    const std::string gw = replaced(kGateway, "    hosts: [\"*\"]\n",
                                    "    hosts: [\"*\"]\n  - port: {number: 31401, name: tcp2, protocol: TCP}\n");
    Diagnostics diag;
    auto services = resolve(docs({kWorkloads, gw, kDestinationRule, vs}), &diag);
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(services->size(), 2u);
    EXPECT_EQ((*services)[0].listen[0].port, 31400);
    EXPECT_EQ((*services)[0].subsets[0].name, "v1");
    EXPECT_EQ((*services)[1].name, "two-routes-1");
    ASSERT_EQ((*services)[1].listen.size(), 1u) << "the catch-all route keeps only what the first left";
    EXPECT_EQ((*services)[1].listen[0].port, 31401);
}

TEST(Istio, BindAddressAndDestinationSubnetsNarrowTheFrontend) {
    const std::string gw = replaced(kGateway, "    hosts: [\"*\"]\n", "    hosts: [\"*\"]\n    bind: 127.0.0.10\n");
    auto services = resolve(docs({kWorkloads, gw, kDestinationRule, kVirtualService}));
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ((*services)[0].listen.size(), 1u);
    EXPECT_EQ((*services)[0].listen[0].str(), "127.0.0.10:31400");

    const std::string vs = replaced(kVirtualService, "match: [{port: 31400}]",
                                    "match: [{port: 31400, destinationSubnets: [127.0.0.20/32, \"::1\"]}]");
    services = resolve(docs({kWorkloads, kGateway, kDestinationRule, vs}));
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ((*services)[0].listen.size(), 2u);
    EXPECT_EQ((*services)[0].listen[0].str(), "127.0.0.20:31400");
    EXPECT_EQ((*services)[0].listen[1].str(), "[::1]:31400");
}

TEST(Istio, UseSourceIpGivesSourceAffinity) {
    const std::string dr = replaced(kDestinationRule, "  subsets:\n",
                                    "  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: "
                                    "true}\n  subsets:\n");
    auto services = resolve(docs({kWorkloads, kGateway, dr, kVirtualService}));
    ASSERT_TRUE(services) << services.error().message;
    EXPECT_EQ((*services)[0].affinity, Affinity::kSourceIp);
    EXPECT_EQ((*services)[0].affinity_where.line, 40) << "the useSourceIp line";
}

struct IstioErrorCase {
    const char* desc;
    std::string text;
    std::string want;
};

void PrintTo(const IstioErrorCase& c, std::ostream* os) { *os << c.desc; }

class IstioErrorTest : public ::testing::TestWithParam<IstioErrorCase> {};

TEST_P(IstioErrorTest, IsRefusedWithFileLineFieldAndFix) {
    const auto& c = GetParam();
    auto services = resolve(c.text);
    ASSERT_FALSE(services) << c.desc << " was accepted";
    EXPECT_EQ(services.error().kind, ErrorKind::kConfig);
    EXPECT_NE(services.error().message.find(c.want), std::string::npos)
        << c.desc << "\n got: " << services.error().message << "\nwant: " << c.want;
    EXPECT_EQ(services.error().message.find('\n'), std::string::npos);
}

const std::string kPrefix = std::string(kWorkloads) + "---\n" + kGateway + "---\n" + kDestinationRule + "---\n";

INSTANTIATE_TEST_SUITE_P(
    Table, IstioErrorTest,
    ::testing::Values(
        IstioErrorCase{"match not a list", kPrefix + replaced(kVirtualService, "match: [{port: 31400}]", "match: {port: 31400}"),
                       "t.yaml:49: spec.tcp[0].match: must be a list"},
        IstioErrorCase{"unknown gateway", kPrefix + replaced(kVirtualService, "[tcp-echo-gateway]", "[nope]"),
                       "t.yaml:47: spec.gateways[0]: no Gateway \"nope\" in namespace shift; known gateways: "
                       "shift/tcp-echo-gateway"},
        IstioErrorCase{"unknown host", kPrefix + replaced(kVirtualService, "host: tcp-echo, port: {number: 9000}, subset: v1",
                                                          "host: tcp-echoo, port: {number: 9000}, subset: v1"),
                       "t.yaml:51: spec.tcp[0].route[0].destination.host: no Service or ServiceEntry for host "
                       "\"tcp-echoo\" in namespace shift"},
        IstioErrorCase{"unknown subset", kPrefix + replaced(kVirtualService, "subset: v2", "subset: v3"),
                       "spec.tcp[0].route[1].destination.subset: \"v3\" is not a subset of host \"tcp-echo\"; "
                       "DestinationRule shift (t.yaml:33) defines: v1, v2"},
        IstioErrorCase{"subset without DestinationRule",
                       docs({kWorkloads, kGateway, kVirtualService}),
                       "destination.subset: \"v1\": no DestinationRule defines subsets for host \"tcp-echo\"; add one "
                       "with spec.host: tcp-echo"},
        IstioErrorCase{"unknown port", kPrefix + replaced(kVirtualService, "port: {number: 9000}, subset: v1",
                                                          "port: {number: 9100}, subset: v1"),
                       "destination.port: Service shift/tcp-echo has no port 9100; its ports: 9000, 9001"},
        IstioErrorCase{"port needed", kPrefix + replaced(kVirtualService, "port: {number: 9000}, subset: v1", "subset: v1"),
                       "destination.port: Service shift/tcp-echo has ports 9000, 9001; name the one to route to"},
        IstioErrorCase{"weight not an integer", kPrefix + replaced(kVirtualService, "weight: 20", "weight: twenty"),
                       "t.yaml:52: spec.tcp[0].route[0].weight: \"twenty\" is not an integer"},
        IstioErrorCase{"weight missing", kPrefix + replaced(kVirtualService, "      weight: 20\n", ""),
                       "spec.tcp[0].route[0].weight: missing; with several destinations each needs a weight"},
        IstioErrorCase{"two routes claim a frontend",
                       kPrefix + kVirtualService + "---\n" + replaced(kVirtualService, "tcp-echo-routing", "second"),
                       "0.0.0.0:31400 is claimed by service \"second\" and by \"tcp-echo-routing\""},
        IstioErrorCase{"unknown field", kPrefix + replaced(kVirtualService, "  tcp:\n", "  tcpp: []\n  tcp:\n"),
                       "spec.tcpp: unknown field; known here: hosts, gateways, http, tls, tcp, exportTo"},
        IstioErrorCase{"rule for unknown host", kPrefix + replaced(kDestinationRule, "host: tcp-echo", "host: nope"),
                       "spec.host: no Service or ServiceEntry for host \"nope\""},
        IstioErrorCase{"wide destination subnet",
                       kPrefix + replaced(kVirtualService, "match: [{port: 31400}]",
                                          "match: [{port: 31400, destinationSubnets: [10.0.0.0/8]}]"),
                       "\"10.0.0.0/8\": tcpshift takes single addresses (/32 or /128) as destination addresses"},
        IstioErrorCase{"mesh host without address",
                       kPrefix + replaced(replaced(kVirtualService, "  gateways: [tcp-echo-gateway]\n", ""),
                                          "hosts: [\"*\"]", "hosts: [tcp-echo]"),
                       "Service shift/tcp-echo (t.yaml:1) has no address; give it spec.addresses (ServiceEntry) or "
                       "spec.clusterIP (Service)"},
        IstioErrorCase{"workload with hostname",
                       replaced(task(), "address: 127.0.0.2", "address: vm1.example.com"),
                       "t.yaml:14: spec.address: \"vm1.example.com\" is not an IP address"},
        IstioErrorCase{"gateway on the workloads' port",
                       docs({kWorkloads, replaced(kGateway, "number: 31400", "number: 9000"), kDestinationRule,
                             replaced(kVirtualService, "port: 31400", "port: 9000")}),
                       "service \"tcp-echo-routing\": frontend 0.0.0.0:9000 covers its own backend 127.0.0.2:9000 "
                       "(t.yaml:10): clients that connect to that backend would be steered by weight too; move one of "
                       "them to another port, or the gateway to another address (Istio: the server's bind; Gateway "
                       "API: spec.addresses); only a TrafficShift can take a port over, with spec.takeover: true"},
        IstioErrorCase{"unserved version", replaced(task(), "networking.istio.io/v1alpha3", "networking.istio.io/v2"),
                       "apiVersion: \"networking.istio.io/v2\" is not served for Gateway; use networking.istio.io/v1alpha3, "
                       "networking.istio.io/v1beta1, networking.istio.io/v1"}),
    [](const auto& info) { return test_case_name(info.param.desc); });

TEST(Istio, ASubsetThatSelectsNoWorkloadIsAnError) {
    auto services = resolve(docs({kWorkloads, kGateway, replaced(kDestinationRule, "{version: v2}", "{version: v9}"),
                                  kVirtualService}));
    ASSERT_FALSE(services);
    EXPECT_NE(services.error().message.find("subset \"v2\" of Service shift/tcp-echo selects no workload (labels {app: "
                                            "tcp-echo} and {version: v9}); add a WorkloadEntry with those labels in "
                                            "namespace shift"),
              std::string::npos)
        << services.error().message;
}

TEST(Istio, UnhonouredFieldsWarnAndStrictRefuses) {
    const std::string vs = replaced(kVirtualService, "  tcp:\n", "  http:\n  - route: [{destination: {host: x}}]\n  tcp:\n");
    Diagnostics diag;
    auto services = resolve(docs({kWorkloads, kGateway, kDestinationRule, vs}), &diag);
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(diag.warnings.size(), 1u);
    EXPECT_NE(diag.warnings[0].find("spec.http: http routes are not served"), std::string::npos) << diag.warnings[0];
    Diagnostics strict{.strict = true};
    services = resolve(docs({kWorkloads, kGateway, kDestinationRule, vs}), &strict);
    ASSERT_FALSE(services);
    EXPECT_NE(services.error().message.find("(an error under --strict)"), std::string::npos);
}

TEST(Istio, KindsItDoesNotHandleAreSkippedWithANote) {
    Diagnostics diag;
    auto services = resolve(task() + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: tcp-echo-v1}\n",
                            &diag);
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(diag.notes.size(), 1u);
    EXPECT_NE(diag.notes[0].find("skipped Deployment \"tcp-echo-v1\" (apps/v1)"), std::string::npos) << diag.notes[0];
}

}  // namespace
}  // namespace tcpshift
