// Istio networking.istio.io: Gateway, VirtualService (tcp routes) and DestinationRule.
//
// A tcp route of a VirtualService becomes one tcpshift service, named after the
// VirtualService (with "-N" for its N-th tcp route, N > 0). Its frontends are the TCP servers
// of its gateways that the route's match selects, first match winning within the
// VirtualService; with no gateway (or "mesh") they are the virtual IPs and ports of its hosts.
// Its subsets are the route's destinations, named by their subset (or host).
#include "config/mesh/istio.h"

#include <string>

#include "config/yaml_fields.h"

namespace tcpshift::mesh {

namespace {

bool is_istio(const Resource& r, std::string_view kind) { return r.group() == istio::kGroup && r.kind == kind; }

// The annotation tcpshift.io/rebalance on a VirtualService: "true", "false", or
// "rate=N,max=K" (either part may be left out): what spec.rebalance is to a TrafficShift.
Result<void> parse_rebalance_annotation(const Resource& r, RebalancePolicy& out) {
    const YAML::Node metadata = r.node["metadata"];
    if (!metadata || !metadata.IsMap()) return {};
    const YAML::Node annotations = metadata["annotations"];
    if (!annotations || !annotations.IsMap()) return {};
    const YAML::Node value = annotations["tcpshift.io/rebalance"];
    if (!value) return {};
    const std::string field = "metadata.annotations[tcpshift.io/rebalance]";
    auto text = scalar_string(value, r.where.file, field);
    if (!text) return fail(text.error());
    out.where = {r.where.file, line_of(value)};
    const auto bad = [&](const std::string& why) {
        return fail(config_error(at(value, r.where.file) + ": " + field + ": \"" + *text + "\" " + why +
                                 "; give true, false or rate=N,max=K"));
    };
    if (*text == "false") return {};
    out.enabled = true;
    if (*text == "true") return {};
    std::string rest = *text;
    while (!rest.empty()) {
        const std::string part = rest.substr(0, rest.find(','));
        rest = part.size() < rest.size() ? rest.substr(part.size() + 1) : "";
        const auto eq = part.find('=');
        if (eq == std::string::npos) return bad("has a part without =");
        const std::string key = part.substr(0, eq), number = part.substr(eq + 1);
        uint64_t n = 0;
        if (number.empty() || number.size() > 10 || number.find_first_not_of("0123456789") != std::string::npos)
            return bad("has a value that is not a whole number");
        n = std::stoull(number);
        if (key == "rate") {
            if (n < 1 || n > kMaxRebalanceRate) return bad("has a rate out of range 1-" + std::to_string(kMaxRebalanceRate));
            out.rate = static_cast<uint32_t>(n);
        } else if (key == "max") {
            if (n > UINT32_MAX) return bad("has a max out of range");
            out.max = static_cast<uint32_t>(n);
        } else {
            return bad("names \"" + key + "\", which is not rate or max");
        }
    }
    return {};
}

}  // namespace

Result<std::vector<ServiceSpec>> resolve_istio(const std::vector<Resource>& resources, const Catalog& catalog,
                                               Diagnostics& diag) {
    std::vector<istio::Gateway> gateways;
    std::vector<istio::DestinationRule> rules;
    for (const auto& r : resources) {
        if (is_istio(r, "Gateway")) {
            auto gw = guarded(r, [&] { return istio::parse_gateway(r, diag); });
            if (!gw) return fail(gw.error());
            gateways.push_back(std::move(*gw));
        } else if (is_istio(r, "DestinationRule")) {
            auto dr = guarded(r, [&] { return istio::parse_destination_rule(r, catalog, diag); });
            if (!dr) return fail(dr.error());
            rules.push_back(std::move(*dr));
        }
    }
    std::vector<ServiceSpec> out;
    for (const auto& r : resources) {
        if (!is_istio(r, "VirtualService")) continue;
        auto services = guarded(r, [&] { return istio::resolve_virtual_service(r, catalog, gateways, rules, diag); });
        if (!services) return fail(services.error());
        RebalancePolicy rebalance;
        if (auto ok = guarded(r, [&] { return parse_rebalance_annotation(r, rebalance); }); !ok) return fail(ok.error());
        for (auto& s : *services) {
            s.rebalance = rebalance;
            out.push_back(std::move(s));
        }
    }
    return out;
}

}  // namespace tcpshift::mesh
