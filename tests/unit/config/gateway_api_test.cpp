// Gateway API documents, shaped like those of its API reference, resolved into services:
// Gateway listeners and addresses, TCPRoute parentRefs and backendRefs, and their errors.
#include <gtest/gtest.h>

#include "mesh_documents.h"
#include "test_names.h"

namespace tcpshift {
namespace {

using namespace mesh_testing;

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
                            "kind \"Pod\" of group \"\" is not a backend tcpshift knows"},
        // A null item is no mapping: refused with its place, not an exception out of yaml-cpp.
        GatewayApiErrorCase{"null parent ref", "{name: gw, sectionName: tcp}", "null",
                            "spec.parentRefs[0]: must be a mapping with the Gateway's name"},
        GatewayApiErrorCase{"null backend ref", "{name: echo-v1, port: 9000, weight: 20}", "null",
                            "spec.rules[0].backendRefs[0]"}),
    [](const auto& info) { return test_case_name(info.param.desc); });

}  // namespace
}  // namespace tcpshift
