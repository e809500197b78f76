// The parts of the Istio resolver (istio.cpp): Gateways and DestinationRules are read first
// (istio_gateway.cpp, destination_rule.cpp), then each VirtualService resolves against them
// (virtual_service.cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/mesh/mesh.h"

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
    bool source_ip = false;
    SourceRef where;
};

struct DestinationRule {
    const MeshService* service = nullptr;
    std::string ns;
    std::vector<SubsetRule> subsets;
    bool source_ip = false;
    SourceRef source_ip_where;
    std::optional<OutlierPolicy> outlier;  // spec.trafficPolicy.outlierDetection
    SourceRef where;
};

inline std::optional<std::string> scalar_or_none(const YAML::Node& node) {
    if (node && node.IsScalar()) return node.Scalar();
    return std::nullopt;
}

// A Gateway's TCP servers; a server of another protocol is left out with a warning.
Result<Gateway> parse_gateway(const Resource& r, Diagnostics& diag);

// A DestinationRule, its host looked up in the catalog.
Result<DestinationRule> parse_destination_rule(const Resource& r, const Catalog& catalog, Diagnostics& diag);

// Gives `svc` the outlier policy of `rule` (a route destination's DestinationRule; may be
// null): the first rule with one sets the service's policy, and a later rule of another host
// whose policy differs is warned about, naming both, since one policy holds for the service.
// `where` is "file:line: field" of the destination.
Result<void> take_outlier_policy(const DestinationRule* rule, ServiceSpec& svc, const std::string& where,
                                 Diagnostics& diag);

// The services of one VirtualService: one per tcp route that keeps a frontend.
Result<std::vector<ServiceSpec>> resolve_virtual_service(const Resource& vs, const Catalog& catalog,
                                                         const std::vector<Gateway>& gateways,
                                                         const std::vector<DestinationRule>& rules,
                                                         Diagnostics& diag);

}  // namespace tcpshift::mesh::istio
