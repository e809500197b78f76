// The documents of Istio's tcp-echo traffic-shifting task, as the Istio and Gateway API tests
// start from them, and the helpers that resolve and edit them.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "config/config.h"
#include "config/resolve.h"

namespace tcpshift::mesh_testing {

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

inline std::string docs(std::initializer_list<std::string> parts) {
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : "---\n") + p;
    return out;
}

inline std::string task() { return docs({kWorkloads, kGateway, kDestinationRule, kVirtualService}); }

inline Result<std::vector<ServiceSpec>> resolve(const std::string& text, Diagnostics* diag = nullptr) {
    auto resources = parse_resources(text, "t.yaml", "default", diag);
    if (!resources) return fail(resources.error());
    return resolve_services(*resources, diag);
}

inline std::string replaced(std::string text, const std::string& from, const std::string& to) {
    const auto pos = text.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    if (pos != std::string::npos) text.replace(pos, from.size(), to);
    return text;
}

}  // namespace tcpshift::mesh_testing
