// Istio networking.istio.io: Gateway, VirtualService (tcp routes) and DestinationRule.
//
// A tcp route of a VirtualService becomes one tcpshift service, named after the
// VirtualService (with "-N" for its N-th tcp route, N > 0). Its frontends are the TCP servers
// of its gateways that the route's match selects, first match winning within the
// VirtualService; with no gateway (or "mesh") they are the virtual IPs and ports of its hosts.
// Its subsets are the route's destinations, named by their subset (or host).
#include "config/mesh/istio.h"

namespace tcpshift::mesh {

namespace {

bool is_istio(const Resource& r, std::string_view kind) { return r.group() == istio::kGroup && r.kind == kind; }

}  // namespace

Result<std::vector<ServiceSpec>> resolve_istio(const std::vector<Resource>& resources, const Catalog& catalog,
                                               Diagnostics& diag) {
    std::vector<istio::Gateway> gateways;
    std::vector<istio::DestinationRule> rules;
    for (const auto& r : resources) {
        if (is_istio(r, "Gateway")) {
            auto gw = istio::parse_gateway(r, diag);
            if (!gw) return fail(gw.error());
            gateways.push_back(std::move(*gw));
        } else if (is_istio(r, "DestinationRule")) {
            auto dr = istio::parse_destination_rule(r, catalog, diag);
            if (!dr) return fail(dr.error());
            rules.push_back(std::move(*dr));
        }
    }
    std::vector<ServiceSpec> out;
    for (const auto& r : resources) {
        if (!is_istio(r, "VirtualService")) continue;
        auto services = istio::resolve_virtual_service(r, catalog, gateways, rules, diag);
        if (!services) return fail(services.error());
        for (auto& s : *services) out.push_back(std::move(s));
    }
    return out;
}

}  // namespace tcpshift::mesh
