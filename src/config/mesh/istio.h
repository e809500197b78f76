// The parts of the Istio resolver (istio.cpp): Gateways and DestinationRules are read first
// (istio_gateway.cpp, destination_rule.cpp), then each VirtualService resolves against them
// (virtual_service.cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/mesh/mesh.h"
#include "config/traffic_policy.h"

namespace tcpshift::mesh::istio {

inline constexpr std::string_view kGroup = "networking.istio.io";

struct TcpServer {
    uint16_t port = 0;
    std::vector<Endpoint> addresses;  // port set; the bind address or the wildcards
    SourceRef where;
};

struct Gateway {
    std::string name;
    std::string ns;
    std::vector<TcpServer> servers;
    SourceRef where;
};

struct SubsetRule {
    std::string name;
    Labels labels;
    DestinationPolicy policy;  // the subset's trafficPolicy
    SourceRef where;
};

struct DestinationRule {
    const MeshService* service = nullptr;
    std::string ns;
    std::vector<SubsetRule> subsets;
    DestinationPolicy policy;  // spec.trafficPolicy
    SourceRef where;

    // The policy of connections to `port` of the host, in `subset` (null: none): the subset's
    // blocks over the host's, each level's port settings replacing its policy for that port.
    TrafficPolicy policy_for(const SubsetRule* subset, uint32_t port) const;
};

inline std::optional<std::string> scalar_or_none(const YAML::Node& node) {
    if (node && node.IsScalar()) return node.Scalar();
    return std::nullopt;
}

// A Gateway's TCP servers; a server of another protocol is left out with a warning.
Result<Gateway> parse_gateway(const Resource& r, Diagnostics& diag);

// A DestinationRule, its host looked up in the catalog.
Result<DestinationRule> parse_destination_rule(const Resource& r, const Catalog& catalog, Diagnostics& diag);

// The services of one VirtualService: one per tcp route that keeps a frontend.
Result<std::vector<ServiceSpec>> resolve_virtual_service(const Resource& vs, const Catalog& catalog,
                                                         const std::vector<Gateway>& gateways,
                                                         const std::vector<DestinationRule>& rules,
                                                         Diagnostics& diag);

}  // namespace tcpshift::mesh::istio
