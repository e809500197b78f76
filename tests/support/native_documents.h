// A native TrafficShift document and its parse, shared by the config and compile tests.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "config/resolve.h"

namespace tcpshift::testing {

// Dual stack, source-IP affinity, 20/80 over three backends.
inline constexpr const char* kNativeShift = R"(apiVersion: tcpshift.io/v1alpha1
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

// The services `text` resolves to, read as file t.yaml.
inline Result<std::vector<ServiceSpec>> parse_services(const std::string& text, Diagnostics* diag = nullptr) {
    auto resources = parse_resources(text, "t.yaml", "default", diag);
    if (!resources) return fail(resources.error());
    return resolve_services(*resources);
}

}  // namespace tcpshift::testing
