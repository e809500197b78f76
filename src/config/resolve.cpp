#include "config/resolve.h"
#include "config/yaml_fields.h"

#include <map>
#include <set>

#include "config/mesh/mesh.h"
#include "config/native.h"

namespace tcpshift {

namespace {

// A backend as a refusal names it: its service and where it was configured.
struct BackendPlace {
    const ServiceSpec* service = nullptr;
    Endpoint address;
    SourceRef where;
};

// Why a frontend may not cover `backend`, and how to resolve it. Only a TrafficShift can
// say takeover; a route of Istio or the Gateway API has no such field.
std::string covered_backend_error(const ServiceSpec& svc, size_t frontend, const BackendPlace& backend) {
    const SourceRef& where = frontend < svc.listen_where.size() ? svc.listen_where[frontend] : svc.where;
    const bool own = backend.service == &svc;
    const std::string whose =
        own ? "its own backend " + backend.address.str()
            : "backend " + backend.address.str() + " of service \"" + backend.service->name + "\"";
    const std::string fix =
        svc.origin.kind == "TrafficShift"
            ? "move one of them to another port, or set spec.takeover: true to steer them anyway"
            : "move one of them to another port, or the gateway to another address (Istio: the server's bind; "
              "Gateway API: spec.addresses); only a TrafficShift can take a port over, with spec.takeover: true";
    return where.str() + ": service \"" + svc.name + "\": frontend " + svc.listen[frontend].str() + " covers " + whose +
           " (" + backend.where.str() + "): clients that connect to that backend would be steered " +
           (own ? "by weight too" : "to \"" + svc.name + "\" instead") + "; " + fix;
}

// sk_lookup gives a frontend every new connection to its address and port (the exact
// address, then the wildcard of the connection's family), so a frontend that covers a backend
// takes the clients that connect to that backend directly: its port is taken over. A frontend
// on its own service's backend would steer that backend's direct clients by weight, which is
// a takeover too.
Result<void> check_no_frontend_covers_a_backend(const std::vector<ServiceSpec>& services) {
    std::map<Endpoint, BackendPlace> by_address;
    std::map<Endpoint, BackendPlace> by_port;  // keyed by the wildcard of the backend's family and port
    for (const auto& svc : services)
        for (const auto& subset : svc.subsets)
            for (size_t k = 0; k < subset.backends.size(); ++k) {
                const Endpoint& b = subset.backends[k];
                const SourceRef& where = k < subset.backend_where.size() ? subset.backend_where[k] : subset.where;
                const BackendPlace place{.service = &svc, .address = b, .where = where};
                by_address.emplace(b, place);
                by_port.emplace(Endpoint{.family = b.family, .port = b.port}, place);
            }
    for (const auto& svc : services) {
        if (svc.takeover) continue;
        for (size_t i = 0; i < svc.listen.size(); ++i) {
            const auto& covered = svc.listen[i].is_wildcard() ? by_port : by_address;
            if (auto it = covered.find(svc.listen[i]); it != covered.end())
                return fail(config_error(covered_backend_error(svc, i, it->second)));
        }
    }
    return {};
}

}  // namespace

Result<std::vector<ServiceSpec>> resolve_services(const std::vector<Resource>& resources, Diagnostics* diagnostics) {
    Diagnostics local;
    Diagnostics& diag = diagnostics ? *diagnostics : local;
    std::vector<ServiceSpec> services;
    services.reserve(resources.size());
    for (const auto& r : resources) {
        if (r.kind != "TrafficShift") continue;
        auto svc = guarded(r, [&] { return parse_traffic_shift(r, diag); });
        if (!svc) return fail(svc.error());
        services.push_back(std::move(*svc));
    }
    auto mesh = mesh::resolve_mesh_services(resources, diag);
    if (!mesh) return fail(mesh.error());
    for (auto& svc : *mesh) services.push_back(std::move(svc));
    if (auto ok = validate_services(services); !ok) return fail(ok.error());
    return services;
}

Result<void> validate_services(const std::vector<ServiceSpec>& services) {
    std::map<std::string, const ServiceSpec*> names;
    std::map<Endpoint, const ServiceSpec*> frontends;
    for (const auto& svc : services) {
        if (auto [it, fresh] = names.emplace(svc.name, &svc); !fresh)
            return fail(config_error(svc.where.str() + ": metadata.name: service \"" + svc.name +
                                     "\" is defined twice; the other is at " + it->second->where.str()));
        for (const auto& ep : svc.listen) {
            if (auto [it, fresh] = frontends.emplace(ep, &svc); !fresh)
                return fail(config_error(svc.where.str() + ": spec.listen: " + ep.str() + " is claimed by service \"" +
                                         svc.name + "\" and by \"" + it->second->name + "\" (" +
                                         it->second->where.str() + "); a frontend belongs to one service"));
        }
        std::set<std::string> subset_names;
        std::set<Endpoint> backends;
        uint64_t total = 0;
        for (const auto& subset : svc.subsets) {
            if (!subset_names.insert(subset.name).second)
                return fail(config_error(subset.where.str() + ": subset \"" + subset.name + "\" of service \"" +
                                         svc.name + "\" is defined twice"));
            for (const auto& b : subset.backends)
                if (!backends.insert(b).second)
                    return fail(config_error(subset.where.str() + ": backend " + b.str() + " appears twice in service \"" +
                                             svc.name + "\""));
            total += subset.weight;
        }
        if (total == 0)
            return fail(config_error(svc.where.str() + ": service \"" + svc.name +
                                     "\": every subset has weight 0, so no connection could be served; give one a "
                                     "weight above 0"));
    }
    return check_no_frontend_covers_a_backend(services);
}

}  // namespace tcpshift
