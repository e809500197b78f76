// Istio VirtualService: its tcp routes resolved against the Gateways, the DestinationRules and
// the catalog, as istio.cpp describes.
#include <algorithm>
#include <set>

#include "config/mesh/istio.h"
#include "config/yaml_fields.h"

namespace tcpshift::mesh::istio {

namespace {

// One VirtualService's match, as the fields tcpshift uses.
struct Match {
    std::optional<uint16_t> port;
    std::vector<std::string> gateways;     // normalised "ns/name" or "mesh"
    std::vector<Endpoint> subnets;         // single addresses, port 0
    std::vector<SourceRef> subnets_where;
};

std::string gateway_ref(const std::string& ref, const std::string& ns) {
    if (ref == "mesh" || ref.find('/') != std::string::npos) return ref;
    return ns + "/" + ref;
}

class VirtualServiceResolver {
   public:
    VirtualServiceResolver(const Resource& vs, const Catalog& catalog, const std::vector<Gateway>& gateways,
                           const std::vector<DestinationRule>& rules, Diagnostics& diag)
        : vs_(vs), file_(vs.where.file), catalog_(catalog), gateways_(gateways), rules_(rules), diag_(diag) {}

    Result<std::vector<ServiceSpec>> resolve() {
        const YAML::Node spec = vs_.node["spec"];
        if (!spec || !spec.IsMap()) return fail(config_error(vs_.where.str() + ": spec: missing or not a mapping"));
        if (auto ok = check_fields(spec, {"hosts", "gateways", "http", "tls", "tcp", "exportTo"}, file_, "spec."); !ok)
            return fail(ok.error());
        for (const char* other : {"http", "tls"}) {
            if (spec[other] && spec[other].size() > 0) {
                if (auto ok = diag_.warn(at(spec[other], file_) + ": spec." + other + ": " + other +
                                         " routes are not served; tcpshift steers tcp routes");
                    !ok)
                    return fail(ok.error());
            }
        }
        std::vector<std::string> gateway_refs;
        if (const YAML::Node gws = spec["gateways"])
            for (size_t i = 0; i < gws.size(); ++i) {
                auto ref = scalar_string(gws[i], file_, "spec.gateways[" + std::to_string(i) + "]");
                if (!ref) return fail(ref.error());
                const std::string norm = gateway_ref(*ref, vs_.ns);
                if (norm != "mesh" && !find_gateway(norm))
                    return fail(config_error(at(gws[i], file_) + ": spec.gateways[" + std::to_string(i) +
                                             "]: no Gateway \"" + *ref + "\" in namespace " +
                                             norm.substr(0, norm.find('/')) + "; known gateways: " + known_gateways()));
                gateway_refs.push_back(norm);
            }
        if (gateway_refs.empty()) gateway_refs.push_back("mesh");

        std::vector<ServiceSpec> out;
        const YAML::Node tcp = spec["tcp"];
        if (!tcp) return out;
        if (!tcp.IsSequence()) return fail(config_error(at(tcp, file_) + ": spec.tcp: must be a list of routes"));
        std::set<Endpoint> claimed;
        for (size_t i = 0; i < tcp.size(); ++i) {
            auto svc = resolve_route(tcp[i], i, gateway_refs, spec, claimed);
            if (!svc) return fail(svc.error());
            if (svc->listen.empty()) {
                if (auto ok = diag_.warn(at(tcp[i], file_) + ": spec.tcp[" + std::to_string(i) +
                                         "]: matches no frontend that an earlier route did not take; it routes nothing");
                    !ok)
                    return fail(ok.error());
                continue;
            }
            out.push_back(std::move(*svc));
        }
        return out;
    }

   private:
    const Gateway* find_gateway(const std::string& ref) const {
        for (const auto& g : gateways_)
            if (g.ns + "/" + g.name == ref) return &g;
        return nullptr;
    }

    std::string known_gateways() const {
        std::string s;
        for (const auto& g : gateways_) s += (s.empty() ? "" : ", ") + g.ns + "/" + g.name;
        return s.empty() ? "none" : s;
    }

    Result<std::vector<Match>> parse_matches(const YAML::Node& matches, const std::string& field) {
        std::vector<Match> out;
        if (!matches || matches.IsNull()) return out;
        if (!matches.IsSequence()) return fail(config_error(at(matches, file_) + ": " + field + ".match: must be a list"));
        for (size_t k = 0; k < matches.size(); ++k) {
            const std::string mfield = field + ".match[" + std::to_string(k) + "]";
            const YAML::Node m = matches[k];
            if (auto ok = check_fields(m, {"destinationSubnets", "port", "sourceLabels", "gateways", "sourceNamespace"},
                                       file_, mfield + ".");
                !ok)
                return fail(ok.error());
            Match match;
            if (m["port"]) {
                auto port = scalar_int(m["port"], file_, mfield + ".port", 1, 65535);
                if (!port) return fail(port.error());
                match.port = static_cast<uint16_t>(*port);
            }
            if (const YAML::Node gws = m["gateways"])
                for (const auto& g : gws) {
                    auto ref = scalar_string(g, file_, mfield + ".gateways");
                    if (!ref) return fail(ref.error());
                    match.gateways.push_back(gateway_ref(*ref, vs_.ns));
                }
            if (const YAML::Node subnets = m["destinationSubnets"]) {
                for (size_t s = 0; s < subnets.size(); ++s) {
                    const std::string sfield = mfield + ".destinationSubnets[" + std::to_string(s) + "]";
                    auto addr = parse_host_address(subnets[s], file_, sfield, "destination addresses");
                    if (!addr) return fail(addr.error());
                    match.subnets.push_back(*addr);
                    match.subnets_where.push_back({file_, line_of(subnets[s])});
                }
            }
            for (const char* ignored : {"sourceLabels", "sourceNamespace"}) {
                if (m[ignored]) {
                    if (auto ok = diag_.warn(at(m[ignored], file_) + ": " + mfield + "." + ignored +
                                             ": cannot be honoured on a host; the match applies to every client");
                        !ok)
                        return fail(ok.error());
                }
            }
            out.push_back(std::move(match));
        }
        return out;
    }

    // The frontends a route's matches select among candidate (port, addresses) of a gateway
    // or of the mesh; the first route to select a frontend keeps it.
    void claim(const std::vector<Match>& matches, const std::string& gateway, uint16_t port,
               const std::vector<Endpoint>& addresses, const SourceRef& where, std::set<Endpoint>& claimed,
               ServiceSpec& svc) {
        std::vector<Endpoint> selected;
        bool matched = matches.empty();
        for (const auto& m : matches) {
            if (m.port && *m.port != port) continue;
            if (!m.gateways.empty() && std::find(m.gateways.begin(), m.gateways.end(), gateway) == m.gateways.end())
                continue;
            matched = true;
            for (Endpoint subnet : m.subnets) {
                subnet.port = port;
                selected.push_back(subnet);
            }
        }
        if (!matched) return;
        if (selected.empty()) selected = addresses;
        for (const auto& ep : selected) {
            if (!claimed.insert(ep).second) continue;
            svc.listen.push_back(ep);
            svc.listen_where.push_back(where);
        }
    }

    Result<ServiceSpec> resolve_route(const YAML::Node& route_node, size_t index,
                                      const std::vector<std::string>& gateway_refs, const YAML::Node& spec,
                                      std::set<Endpoint>& claimed) {
        const std::string field = "spec.tcp[" + std::to_string(index) + "]";
        if (auto ok = check_fields(route_node, {"match", "route"}, file_, field + "."); !ok) return fail(ok.error());
        ServiceSpec svc{.name = index == 0 ? vs_.name : vs_.name + "-" + std::to_string(index),
                        .where = {file_, line_of(route_node)},
                        .origin = vs_.key()};
        auto matches = parse_matches(route_node["match"], field);
        if (!matches) return fail(matches.error());

        for (const auto& ref : gateway_refs) {
            if (ref != "mesh") {
                const Gateway* gw = find_gateway(ref);
                for (const auto& server : gw->servers)
                    claim(*matches, ref, server.port, server.addresses, server.where, claimed, svc);
                continue;
            }
            auto ok = claim_mesh(*matches, spec, claimed, svc);
            if (!ok) return fail(ok.error());
        }

        const YAML::Node route = route_node["route"];
        if (!route || !route.IsSequence() || route.size() == 0)
            return fail(config_error(at(route_node, file_) + ": " + field + ".route: needs at least one destination"));
        std::set<std::string> names;
        for (size_t j = 0; j < route.size(); ++j) {
            auto subset = resolve_destination(route[j], field + ".route[" + std::to_string(j) + "]", route.size(), svc);
            if (!subset) return fail(subset.error());
            subset->weight_path = {"spec", "tcp", std::to_string(index), "route", std::to_string(j), "weight"};
            if (!names.insert(subset->name).second)
                return fail(config_error(subset->where.str() + ": " + field + ".route[" + std::to_string(j) +
                                         "]: destination \"" + subset->name + "\" appears twice in this route"));
            svc.subsets.push_back(std::move(*subset));
        }
        return svc;
    }

    Result<void> claim_mesh(const std::vector<Match>& matches, const YAML::Node& spec, std::set<Endpoint>& claimed,
                            ServiceSpec& svc) {
        const YAML::Node hosts = spec["hosts"];
        if (!hosts || hosts.size() == 0)
            return fail(config_error(vs_.where.str() + ": spec.hosts: a VirtualService without gateways routes the "
                                                       "mesh and needs the hosts it serves"));
        for (size_t h = 0; h < hosts.size(); ++h) {
            auto host_text = scalar_string(hosts[h], file_, "spec.hosts[" + std::to_string(h) + "]");
            if (!host_text) return fail(host_text.error());
            const std::string& host = *host_text;
            const MeshService* service = catalog_.find_host(host, vs_.ns);
            if (!service)
                return fail(config_error(at(hosts[h], file_) + ": spec.hosts[" + std::to_string(h) +
                                         "]: no Service or ServiceEntry for host \"" + host + "\" in namespace " +
                                         vs_.ns + "; a mesh route listens on the virtual IP of one"));
            if (service->addresses.empty())
                return fail(config_error(at(hosts[h], file_) + ": spec.hosts[" + std::to_string(h) + "]: " +
                                         service->display() + " (" + service->where.str() +
                                         ") has no address; give it spec.addresses (ServiceEntry) or spec.clusterIP "
                                         "(Service) so clients have a virtual IP to connect to"));
            for (const auto& port : service->ports) {
                std::vector<Endpoint> addresses;
                for (Endpoint a : service->addresses) {
                    a.port = port.number;
                    addresses.push_back(a);
                }
                const size_t before = svc.listen.size();
                claim(matches, "mesh", port.number, addresses, service->where, claimed, svc);
                for (size_t k = before; k < svc.listen.size(); ++k) {
                    Endpoint vip = svc.listen[k];
                    vip.port = 0;
                    if (std::find(svc.local_addresses.begin(), svc.local_addresses.end(), vip) ==
                        svc.local_addresses.end())
                        svc.local_addresses.push_back(vip);
                }
            }
        }
        return {};
    }

    const DestinationRule* rule_for(const MeshService* service) const {
        const DestinationRule* other = nullptr;
        for (const auto& dr : rules_) {
            if (dr.service != service) continue;
            if (dr.ns == vs_.ns) return &dr;
            if (!other) other = &dr;
        }
        return other;
    }

    // The port of a destination: destination.port.number, or the service's only port.
    Result<const ServicePort*> destination_port(const YAML::Node& dest, const MeshService& service,
                                                const std::string& where, const std::string& field) {
        std::optional<uint16_t> port_number;
        if (const YAML::Node port = dest["port"]) {
            if (auto ok = check_fields(port, {"number"}, file_, field + ".destination.port."); !ok)
                return fail(ok.error());
            auto n = scalar_int(port["number"], file_, field + ".destination.port.number", 1, 65535);
            if (!n) return fail(n.error());
            port_number = static_cast<uint16_t>(*n);
        }
        return service_port(service, port_number, where, field + ".destination.port");
    }

    // The labels a destination's subset adds to its service's selector (none without a
    // subset), naming `subset` after it. The DestinationRule's policy for the destination's
    // port (the subset's over the host's) becomes the service's: useSourceIp in it gives the
    // whole service source-IP affinity.
    Result<Labels> subset_labels(const YAML::Node& dest, const std::string& host, const MeshService& service,
                                 uint16_t port, const std::string& where, const std::string& field,
                                 SubsetSpec& subset, ServiceSpec& svc) {
        const DestinationRule* dr = rule_for(&service);
        const SubsetRule* rule = nullptr;
        auto name = scalar_or_none(dest["subset"]);
        if (name) {
            subset.name = *name;
            if (!dr)
                return fail(config_error(where + ": " + field + ".destination.subset: \"" + *name +
                                         "\": no DestinationRule defines subsets for host \"" + host +
                                         "\"; add one with spec.host: " + host));
            std::string known;
            for (const auto& s : dr->subsets) {
                if (s.name == *name) rule = &s;
                known += (known.empty() ? "" : ", ") + s.name;
            }
            if (!rule)
                return fail(config_error(where + ": " + field + ".destination.subset: \"" + *name +
                                         "\" is not a subset of host \"" + host + "\"; DestinationRule " + dr->ns +
                                         " (" + dr->where.str() + ") defines: " + (known.empty() ? "none" : known)));
        }
        if (!dr) return Labels{};
        const TrafficPolicy policy = dr->policy_for(rule, port);
        if (policy.source_ip) {
            svc.affinity = Affinity::kSourceIp;
            svc.affinity_where = policy.source_ip_where;
        }
        if (auto ok = take_policy(policy, svc.subsets.empty(), svc, where + ": " + field + ".destination", diag_); !ok)
            return fail(ok.error());
        return rule ? rule->labels : Labels{};
    }

    // The workloads of a destination; none is an error that says which labels found none.
    Result<std::vector<const Workload*>> destination_workloads(const YAML::Node& dest, const MeshService& service,
                                                               const Labels& labels, const SubsetSpec& subset,
                                                               const std::string& where, const std::string& field) {
        auto workloads = catalog_.select(service, labels);
        if (!workloads.empty()) return workloads;
        return fail(config_error(where + ": " + field + ".destination: " +
                                 (dest["subset"] ? "subset \"" + subset.name + "\" of " : std::string()) +
                                 service.display() + " selects no workload" +
                                 (service.selector ? " (labels " + labels_str(*service.selector) +
                                                         (labels.empty() ? "" : " and " + labels_str(labels)) + ")"
                                                   : std::string(" (it has no selector)")) +
                                 "; add a WorkloadEntry with those labels in namespace " + service.ns));
    }

    // A destination's weight; the lone destination of a route may leave it out.
    Result<void> destination_weight(const YAML::Node& d, const std::string& field, size_t destinations,
                                    SubsetSpec& subset) {
        if (const YAML::Node w = d["weight"]) {
            auto weight = scalar_weight(w, file_, field + ".weight");
            if (!weight) return fail(weight.error());
            subset.weight = *weight;
            subset.weight_where = {file_, line_of(w)};
        } else if (destinations == 1) {
            subset.weight = 100;  // a lone destination takes all
            subset.weight_where = subset.where;
        } else {
            return fail(config_error(at(d, file_) + ": " + field +
                                     ".weight: missing; with several destinations each needs a weight"));
        }
        return {};
    }

    // A destination of the route, one of `destinations`.
    Result<SubsetSpec> resolve_destination(const YAML::Node& d, const std::string& field, size_t destinations,
                                           ServiceSpec& svc) {
        if (auto ok = check_fields(d, {"destination", "weight", "headers"}, file_, field + "."); !ok)
            return fail(ok.error());
        const YAML::Node dest = d["destination"];
        if (!dest || !dest.IsMap()) return fail(config_error(at(d, file_) + ": " + field + ".destination: missing"));
        if (auto ok = check_fields(dest, {"host", "subset", "port"}, file_, field + ".destination."); !ok)
            return fail(ok.error());
        auto host = optional_string(dest, "host", file_, field + ".destination.host");
        if (!host) return fail(host.error());
        if (!*host) return fail(config_error(at(dest, file_) + ": " + field + ".destination.host: missing"));
        const std::string where = at(dest, file_);
        const MeshService* service = catalog_.find_host(**host, vs_.ns);
        if (!service)
            return fail(config_error(where + ": " + field + ".destination.host: no Service or ServiceEntry for host \"" +
                                     **host + "\" in namespace " + vs_.ns +
                                     "; define one that selects its WorkloadEntries"));
        auto port = destination_port(dest, *service, where, field);
        if (!port) return fail(port.error());

        SubsetSpec subset{.name = **host, .where = {file_, line_of(dest)}};
        auto labels = subset_labels(dest, **host, *service, (*port)->number, where, field, subset, svc);
        if (!labels) return fail(labels.error());
        auto workloads = destination_workloads(dest, *service, *labels, subset, where, field);
        if (!workloads) return fail(workloads.error());
        auto backends = backend_endpoints(*service, **port, *workloads, where, field + ".destination");
        if (!backends) return fail(backends.error());
        subset.backends = *backends;
        for (const Workload* w : *workloads) subset.backend_where.push_back(w->where);
        subset.backend_where.resize(subset.backends.size());
        if (auto ok = destination_weight(d, field, destinations, subset); !ok) return fail(ok.error());
        return subset;
    }

    const Resource& vs_;
    const std::string& file_;
    const Catalog& catalog_;
    const std::vector<Gateway>& gateways_;
    const std::vector<DestinationRule>& rules_;
    Diagnostics& diag_;
};

}  // namespace

Result<std::vector<ServiceSpec>> resolve_virtual_service(const Resource& vs, const Catalog& catalog,
                                                         const std::vector<Gateway>& gateways,
                                                         const std::vector<DestinationRule>& rules,
                                                         Diagnostics& diag) {
    return VirtualServiceResolver(vs, catalog, gateways, rules, diag).resolve();
}

}  // namespace tcpshift::mesh::istio
