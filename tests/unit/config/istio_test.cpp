// Istio and Gateway API documents, shaped like those of their API references, resolved into
// services: every accepted field, every error, every weight rule.
#include <gtest/gtest.h>

#include "netns_fixture.h"
#include "config/config.h"
#include "config/resolve.h"
#include "compile/plan.h"
#include "test_names.h"

namespace tcpshift {
namespace {

constexpr const char* kWorkloads = R"(apiVersion: v1
kind: Service
metadata: {name: tcp-echo, namespace: shift}
spec:
  ports:
  - {name: tcp, port: 9000}
  - {name: tcp-other, port: 9001}
  selector: {app: tcp-echo}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tcp-echo-v1, namespace: shift}
spec:
  address: 127.0.0.2
  labels: {app: tcp-echo, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tcp-echo-v2, namespace: shift}
spec:
  address: 127.0.0.3
  labels: {app: tcp-echo, version: v2}
)";

constexpr const char* kGateway = R"(apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: tcp-echo-gateway, namespace: shift}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
)";

constexpr const char* kDestinationRule = R"(apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: tcp-echo-destination, namespace: shift}
spec:
  host: tcp-echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
)";

constexpr const char* kVirtualService = R"(apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: tcp-echo-routing, namespace: shift}
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
  - match: [{port: 31400}]
    route:
    - destination: {host: tcp-echo, port: {number: 9000}, subset: v1}
      weight: 20
    - destination: {host: tcp-echo, port: {number: 9000}, subset: v2}
      weight: 80
)";

std::string docs(std::initializer_list<std::string> parts) {
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : "---\n") + p;
    return out;
}

std::string task() { return docs({kWorkloads, kGateway, kDestinationRule, kVirtualService}); }

Result<std::vector<ServiceSpec>> resolve(const std::string& text, Diagnostics* diag = nullptr) {
    auto resources = parse_resources(text, "t.yaml", "default", diag);
    if (!resources) return fail(resources.error());
    return resolve_services(*resources, diag);
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
    const auto pos = text.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    if (pos != std::string::npos) text.replace(pos, from.size(), to);
    return text;
}

TEST(Istio, TheTrafficShiftingTaskResolves) {
    auto services = resolve(task());
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(services->size(), 1u);
    const ServiceSpec& s = (*services)[0];
    EXPECT_EQ(s.name, "tcp-echo-routing");
    EXPECT_EQ(s.origin, "VirtualService.networking.istio.io/shift/tcp-echo-routing");
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

// A virtual IP gets a local route: one that cannot name a single service, or a public address
// whose real host the route would hide, is refused unless the resource consents.
struct VipCase {
    const char* desc;
    std::string address;
    std::string annotations;  // metadata.annotations, YAML flow form
    std::string want_error;   // empty: accepted
};

void PrintTo(const VipCase& c, std::ostream* os) { *os << c.desc; }

class VirtualIpTest : public ::testing::TestWithParam<VipCase> {};

TEST_P(VirtualIpTest, IsCheckedBeforeItGetsALocalRoute) {
    const VipCase& c = GetParam();
    const std::string text = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: echo" +
                             (c.annotations.empty() ? "" : ", annotations: " + c.annotations) +
                             "}\nspec:\n  hosts: [echo.internal]\n  addresses: [\"" + c.address +
                             "\"]\n  ports: [{number: 9000, name: tcp, protocol: TCP}]\n  resolution: STATIC\n"
                             "  workloadSelector: {labels: {app: echo}}\n---\n"
                             "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a}\n"
                             "spec: {address: 127.0.0.2, labels: {app: echo}}\n---\n"
                             "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: echo}\n"
                             "spec:\n  hosts: [echo.internal]\n  tcp:\n  - route: [{destination: {host: echo.internal}}]\n";
    auto services = resolve(text);
    if (c.want_error.empty()) {
        EXPECT_TRUE(services) << services.error().message;
        return;
    }
    ASSERT_FALSE(services);
    EXPECT_NE(services.error().message.find(c.want_error), std::string::npos) << services.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, VirtualIpTest,
    ::testing::Values(
        VipCase{.desc = "private", .address = "10.96.0.50"},
        VipCase{.desc = "istio_auto_allocated", .address = "240.240.0.7"},
        VipCase{.desc = "unique_local_v6", .address = "fd00::50"},
        VipCase{.desc = "unspecified", .address = "0.0.0.0",
                .want_error = "t.yaml:6: spec.addresses[0]: virtual IP 0.0.0.0 is the unspecified address"},
        VipCase{.desc = "unspecified_v6", .address = "::", .want_error = "virtual IP :: is the unspecified address"},
        VipCase{.desc = "multicast", .address = "224.0.0.251", .want_error = "virtual IP 224.0.0.251 is a multicast address"},
        VipCase{.desc = "multicast_v6", .address = "ff02::1", .want_error = "virtual IP ff02::1 is a multicast address"},
        VipCase{.desc = "broadcast", .address = "255.255.255.255",
                .want_error = "virtual IP 255.255.255.255 is the broadcast address"},
        VipCase{.desc = "public", .address = "8.8.8.8",
                .want_error = "virtual IP 8.8.8.8 is a public address: its local route would capture this namespace's "
                              "traffic to the real 8.8.8.8; use a private address, or annotate the ServiceEntry with "
                              "tcpshift.io/takeover: \"true\" to take it over"},
        VipCase{.desc = "public_v6", .address = "2001:db8::1", .want_error = "virtual IP 2001:db8::1 is a public address"},
        VipCase{.desc = "public_with_consent", .address = "8.8.8.8", .annotations = "{tcpshift.io/takeover: \"true\"}"}),
    [](const ::testing::TestParamInfo<VipCase>& info) { return std::string(info.param.desc); });

TEST(Istio, TheMeshFormListensOnTheServiceEntryVirtualIp) {
    const std::string text = R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo}
spec:
  hosts: [echo.internal]
  addresses: [10.96.0.50/32, "fd00::50"]
  ports: [{number: 9000, name: tcp, protocol: TCP, targetPort: 7000}]
  resolution: STATIC
  workloadSelector: {labels: {app: echo}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: a}
spec: {address: 127.0.0.2, labels: {app: echo}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: b}
spec: {address: 127.0.0.3, labels: {app: echo}, ports: {tcp: 7100}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo.internal]
  tcp:
  - route: [{destination: {host: echo.internal}}]
)";
    auto services = resolve(text);
    ASSERT_TRUE(services) << services.error().message;
    const ServiceSpec& s = (*services)[0];
    // Every workload is IPv4: the IPv6 virtual IP would reset its clients, so it is not kept,
    // nor its local route.
    ASSERT_EQ(s.listen.size(), 1u);
    EXPECT_EQ(s.listen[0].str(), "10.96.0.50:9000");
    ASSERT_EQ(s.local_addresses.size(), 1u);
    EXPECT_EQ(s.local_addresses[0].address_str(), "10.96.0.50");
    ASSERT_EQ(s.subsets[0].backends.size(), 2u);
    EXPECT_EQ(s.subsets[0].backends[0].str(), "127.0.0.2:7000") << "targetPort";
    EXPECT_EQ(s.subsets[0].backends[1].str(), "127.0.0.3:7100") << "the WorkloadEntry's named port wins";
}

TEST(Istio, ServiceEntryEndpointsAndNamedTargetPorts) {
    const std::string text = R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.internal]
  addresses: [10.96.0.60]
  ports: [{number: 5432, name: pg}]
  endpoints:
  - {address: 127.0.0.5, labels: {role: primary}}
  - {address: 127.0.0.6, labels: {role: replica}, ports: {pg: 6432}}
---
apiVersion: v1
kind: Service
metadata: {name: named}
spec:
  selector: {app: named}
  ports: [{name: tcp, port: 80, targetPort: web}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: n1}
spec: {address: 127.0.0.7, labels: {app: named}, ports: {web: 8080}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers:
  - port: {number: 15432, name: pg, protocol: TCP}
  - port: {number: 80, name: web, protocol: TCP}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: routes}
spec:
  hosts: ["*"]
  gateways: [default/gw]
  tcp:
  - match: [{port: 15432}]
    route: [{destination: {host: db.internal}}]
  - match: [{port: 80}]
    route: [{destination: {host: named.default.svc.cluster.local, port: {number: 80}}}]
)";
    auto services = resolve(text);
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(services->size(), 2u);
    EXPECT_EQ((*services)[0].subsets[0].backends[0].str(), "127.0.0.5:5432");
    EXPECT_EQ((*services)[0].subsets[0].backends[1].str(), "127.0.0.6:6432");
    EXPECT_EQ((*services)[1].subsets[0].backends[0].str(), "127.0.0.7:8080");
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

constexpr const char* kGatewayApi = R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: shift}
spec:
  gatewayClassName: istio
  listeners:
  - {name: tcp, port: 31400, protocol: TCP}
  - {name: other, port: 31401, protocol: TCP}
  - {name: web, port: 80, protocol: HTTP}
---
apiVersion: v1
kind: Service
metadata: {name: echo-v1, namespace: shift}
spec: {selector: {app: tcp-echo, version: v1}, ports: [{port: 9000}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo-v2, namespace: shift}
spec: {selector: {app: tcp-echo, version: v2}, ports: [{port: 9000}]}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: echo, namespace: shift}
spec:
  parentRefs: [{name: gw, sectionName: tcp}]
  rules:
  - backendRefs:
    - {name: echo-v1, port: 9000, weight: 20}
    - {name: echo-v2, port: 9000}
)";

TEST(GatewayApi, ATcpRouteSplitsByBackendRefWeights) {
    Diagnostics diag;
    auto services = resolve(docs({kWorkloads, kGatewayApi}), &diag);
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(services->size(), 1u);
    const ServiceSpec& s = (*services)[0];
    EXPECT_EQ(s.name, "echo");
    ASSERT_EQ(s.listen.size(), 1u) << "only the listener named tcp, IPv4 as its workloads";
    EXPECT_EQ(s.listen[0].str(), "0.0.0.0:31400");
    EXPECT_EQ(s.subsets[0].name, "echo-v1");
    EXPECT_EQ(s.subsets[0].weight, 20u);
    EXPECT_EQ(s.subsets[1].weight, 1u) << "a backendRef's weight defaults to 1";
    EXPECT_EQ(s.subsets[1].backends[0].str(), "127.0.0.3:9000");
    EXPECT_EQ(s.subsets[1].weight_path,
              (std::vector<std::string>{"spec", "rules", "0", "backendRefs", "1", "weight"}));
    EXPECT_EQ(diag.warnings.size(), 1u) << "the HTTP listener is left out with a warning";
}

TEST(GatewayApi, AParentRefWithoutSectionTakesEveryTcpListenerAndAddressesBind) {
    std::string text = replaced(kGatewayApi, "[{name: gw, sectionName: tcp}]", "[{name: gw}]");
    text = replaced(text, "  gatewayClassName: istio\n",
                    "  gatewayClassName: istio\n  addresses: [{type: IPAddress, value: 127.0.0.9}]\n");
    auto services = resolve(docs({kWorkloads, text}));
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ((*services)[0].listen.size(), 2u);
    EXPECT_EQ((*services)[0].listen[0].str(), "127.0.0.9:31400");
    EXPECT_EQ((*services)[0].listen[1].str(), "127.0.0.9:31401");
}

TEST(GatewayApi, BackendRefsMayNameServiceEntries) {
    const std::string se = R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo-se, namespace: shift}
spec:
  hosts: [echo.internal]
  ports: [{number: 9000, name: tcp}]
  workloadSelector: {labels: {version: v2}}
)";
    const std::string text = replaced(kGatewayApi, "{name: echo-v2, port: 9000}",
                                      "{group: networking.istio.io, kind: ServiceEntry, name: echo-se, port: 9000}");
    auto services = resolve(docs({kWorkloads, se, text}));
    ASSERT_TRUE(services) << services.error().message;
    EXPECT_EQ((*services)[0].subsets[1].backends[0].str(), "127.0.0.3:9000");
}

struct GatewayApiErrorCase {
    const char* desc;
    std::string from, to, want;
};

void PrintTo(const GatewayApiErrorCase& c, std::ostream* os) { *os << c.desc; }

class GatewayApiErrorTest : public ::testing::TestWithParam<GatewayApiErrorCase> {};

TEST_P(GatewayApiErrorTest, IsRefused) {
    const auto& c = GetParam();
    auto services = resolve(docs({kWorkloads, replaced(kGatewayApi, c.from, c.to)}));
    ASSERT_FALSE(services) << c.desc;
    EXPECT_NE(services.error().message.find(c.want), std::string::npos)
        << c.desc << "\n got: " << services.error().message << "\nwant: " << c.want;
}

INSTANTIATE_TEST_SUITE_P(
    Table, GatewayApiErrorTest,
    ::testing::Values(
        GatewayApiErrorCase{"unknown gateway", "{name: gw, sectionName: tcp}", "{name: gx, sectionName: tcp}",
                            "spec.parentRefs[0].name: no Gateway \"gx\" (gateway.networking.k8s.io) in namespace shift; "
                            "known: shift/gw"},
        GatewayApiErrorCase{"unknown section", "sectionName: tcp}", "sectionName: nope}",
                            "Gateway shift/gw has no TCP listener named \"nope\"; its TCP listeners: tcp (31400), "
                            "other (31401)"},
        GatewayApiErrorCase{"unknown backend", "{name: echo-v1, port: 9000, weight: 20}",
                            "{name: echo-v3, port: 9000, weight: 20}",
                            "spec.rules[0].backendRefs[0].name: no Service \"echo-v3\" in namespace shift"},
        GatewayApiErrorCase{"wrong port", "{name: echo-v1, port: 9000, weight: 20}",
                            "{name: echo-v1, port: 9001, weight: 20}",
                            "Service shift/echo-v1 has no port 9001; its ports: 9000"},
        GatewayApiErrorCase{"negative weight", "weight: 20}", "weight: -2}",
                            "spec.rules[0].backendRefs[0].weight: -2 is out of range 0-1000000"},
        GatewayApiErrorCase{"unknown backend kind", "{name: echo-v1, port: 9000, weight: 20}",
                            "{kind: Pod, name: echo-v1, port: 9000, weight: 20}",
                            "kind \"Pod\" of group \"\" is not a backend tcpshift knows"}),
    [](const auto& info) { return test_case_name(info.param.desc); });

}  // namespace
}  // namespace tcpshift
