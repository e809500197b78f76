// The catalog side of Istio: ServiceEntry virtual IPs and endpoints, WorkloadEntry ports,
// and Kubernetes Services with named target ports, resolved through VirtualServices.
#include <gtest/gtest.h>

#include "mesh_documents.h"

namespace tcpshift {
namespace {

using namespace mesh_testing;

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

}  // namespace
}  // namespace tcpshift
