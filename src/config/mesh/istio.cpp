// Istio networking.istio.io: Gateway, VirtualService (tcp routes) and DestinationRule.
//
// A tcp route of a VirtualService becomes one tcpshift service, named after the
// VirtualService (with "-N" for its N-th tcp route, N > 0). Its frontends are the TCP servers
// of its gateways that the route's match selects, first match winning within the
// VirtualService; with no gateway (or "mesh") they are the virtual IPs and ports of its hosts.
// Its subsets are the route's destinations, named by their subset (or host).
#include <algorithm>
#include <set>

#include "config/mesh/mesh.h"
#include "config/yaml_fields.h"

namespace tcpshift::mesh {

namespace {

constexpr std::string_view kIstio = "networking.istio.io";

struct TcpServer {
    uint16_t port = 0;
    std::vector<Endpoint> addresses;  // port set; the bind address or the wildcards
    SourceRef where;
};

struct IstioGateway {
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
    SourceRef where;
};

bool is_istio(const Resource& r, std::string_view kind) { return r.group() == kIstio && r.kind == kind; }

std::optional<std::string> scalar_or_none(const YAML::Node& node) {
    if (node && node.IsScalar()) return node.Scalar();
    return std::nullopt;
}

Result<IstioGateway> parse_gateway(const Resource& r, Diagnostics& diag) {
    const std::string& file = r.where.file;
    const YAML::Node spec = r.node["spec"];
    if (!spec || !spec.IsMap()) return fail(config_error(r.where.str() + ": spec: missing or not a mapping"));
    if (auto ok = check_fields(spec, {"selector", "servers"}, file, "spec."); !ok) return fail(ok.error());
    IstioGateway gw{.name = r.name, .ns = r.ns, .where = r.where};
    const YAML::Node servers = spec["servers"];
    if (!servers || !servers.IsSequence())
        return fail(config_error(r.where.str() + ": spec.servers: needs at least one server"));
    for (size_t i = 0; i < servers.size(); ++i) {
        const std::string field = "spec.servers[" + std::to_string(i) + "]";
        const YAML::Node s = servers[i];
        if (auto ok = check_fields(s, {"port", "bind", "hosts", "tls", "name", "defaultEndpoint"}, file, field + ".");
            !ok)
            return fail(ok.error());
        const YAML::Node port = s["port"];
        if (!port || !port.IsMap()) return fail(config_error(at(s, file) + ": " + field + ".port: missing"));
        if (auto ok = check_fields(port, {"number", "protocol", "name", "targetPort"}, file, field + ".port."); !ok)
            return fail(ok.error());
        if (!port["number"]) return fail(config_error(at(port, file) + ": " + field + ".port.number: missing"));
        auto number = scalar_int(port["number"], file, field + ".port.number", 1, 65535);
        if (!number) return fail(number.error());
        std::string protocol = scalar_or_none(port["protocol"]).value_or("");
        std::transform(protocol.begin(), protocol.end(), protocol.begin(), ::toupper);
        if (protocol != "TCP") {
            if (auto ok = diag.warn(at(port, file) + ": " + field + ".port.protocol: " +
                                    (protocol.empty() ? "missing" : protocol) +
                                    ": tcpshift serves TCP servers only; this server is left out");
                !ok)
                return fail(ok.error());
            continue;
        }
        if (s["tls"]) {
            if (auto ok = diag.warn(at(s["tls"], file) + ": " + field +
                                    ".tls: TLS settings are not honoured; the bytes pass through untouched");
                !ok)
                return fail(ok.error());
        }
        TcpServer server{.port = static_cast<uint16_t>(*number), .where = {file, line_of(s)}};
        if (auto bind = scalar_or_none(s["bind"])) {
            auto ep = parse_address(*bind, server.port);
            if (!ep) return fail(config_error(at(s["bind"], file) + ": " + field + ".bind: " + ep.error().message));
            server.addresses.push_back(*ep);
        } else {
            server.addresses = wildcard_frontends(server.port);
        }
        gw.servers.push_back(std::move(server));
    }
    return gw;
}

Result<DestinationRule> parse_destination_rule(const Resource& r, const Catalog& catalog, Diagnostics& diag) {
    const std::string& file = r.where.file;
    const YAML::Node spec = r.node["spec"];
    if (!spec || !spec.IsMap()) return fail(config_error(r.where.str() + ": spec: missing or not a mapping"));
    if (auto ok = check_fields(spec, {"host", "subsets", "trafficPolicy", "exportTo", "workloadSelector"}, file, "spec.");
        !ok)
        return fail(ok.error());
    DestinationRule dr{.ns = r.ns, .where = r.where};
    auto host = optional_string(spec, "host", file, "spec.host");
    if (!host) return fail(host.error());
    if (!*host) return fail(config_error(r.where.str() + ": spec.host: missing"));
    dr.service = catalog.find_host(**host, r.ns);
    if (!dr.service)
        return fail(config_error(at(spec["host"], file) + ": spec.host: no Service or ServiceEntry for host \"" +
                                 **host + "\" in namespace " + r.ns +
                                 "; define it (a ServiceEntry with workloadSelector, or a Service with selector)"));

    // Returns whether useSourceIp is set; warns for every policy that tcpshift cannot apply.
    auto traffic_policy = [&](const YAML::Node& policy, const std::string& field) -> Result<bool> {
        if (!policy) return false;
        if (auto ok = check_fields(policy,
                                   {"loadBalancer", "connectionPool", "outlierDetection", "tls", "portLevelSettings",
                                    "tunnel", "proxyProtocol"},
                                   file, field + ".");
            !ok)
            return fail(ok.error());
        for (const char* ignored : {"connectionPool", "outlierDetection", "tls", "portLevelSettings", "tunnel",
                                    "proxyProtocol"}) {
            if (policy[ignored]) {
                if (auto ok = diag.warn(at(policy[ignored], file) + ": " + field + "." + ignored +
                                        ": not honoured; tcpshift has no proxy to apply it");
                    !ok)
                    return fail(ok.error());
            }
        }
        const YAML::Node lb = policy["loadBalancer"];
        if (!lb) return false;
        if (auto ok = check_fields(lb, {"simple", "consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup"},
                                   file, field + ".loadBalancer.");
            !ok)
            return fail(ok.error());
        const YAML::Node hash = lb["consistentHash"];
        if (!hash) return false;
        for (const auto& kv : hash) {
            auto key_text = scalar_string(kv.first, file, field + ".loadBalancer.consistentHash key");
            if (!key_text) return fail(key_text.error());
            const std::string key = *key_text;
            if (key == "useSourceIp") continue;
            if (auto ok = diag.warn(at(kv.first, file) + ": " + field + ".loadBalancer.consistentHash." + key +
                                    ": only useSourceIp applies to TCP; ignored");
                !ok)
                return fail(ok.error());
        }
        if (!hash["useSourceIp"]) return false;
        return scalar_bool(hash["useSourceIp"], file, field + ".loadBalancer.consistentHash.useSourceIp");
    };

    auto source_ip = traffic_policy(spec["trafficPolicy"], "spec.trafficPolicy");
    if (!source_ip) return fail(source_ip.error());
    dr.source_ip = *source_ip;
    if (dr.source_ip)
        dr.source_ip_where = {
            file, line_of(spec["trafficPolicy"]["loadBalancer"]["consistentHash"]["useSourceIp"])};

    if (const YAML::Node subsets = spec["subsets"]) {
        std::set<std::string> names;
        for (size_t i = 0; i < subsets.size(); ++i) {
            const std::string field = "spec.subsets[" + std::to_string(i) + "]";
            const YAML::Node s = subsets[i];
            if (auto ok = check_fields(s, {"name", "labels", "trafficPolicy"}, file, field + "."); !ok)
                return fail(ok.error());
            SubsetRule rule{.where = {file, line_of(s)}};
            auto name = optional_string(s, "name", file, field + ".name");
            if (!name) return fail(name.error());
            if (!*name) return fail(config_error(at(s, file) + ": " + field + ".name: missing"));
            rule.name = **name;
            if (auto ok = check_name(rule.name, at(s, file), field + ".name"); !ok) return fail(ok.error());
            if (!names.insert(rule.name).second)
                return fail(config_error(at(s, file) + ": " + field + ".name: subset \"" + rule.name +
                                         "\" is defined twice"));
            auto labels = parse_labels(s["labels"], file, field + ".labels");
            if (!labels) return fail(labels.error());
            rule.labels = *labels;
            auto sub_ip = traffic_policy(s["trafficPolicy"], field + ".trafficPolicy");
            if (!sub_ip) return fail(sub_ip.error());
            rule.source_ip = *sub_ip;
            if (rule.source_ip)
                rule.where.line =
                    line_of(s["trafficPolicy"]["loadBalancer"]["consistentHash"]["useSourceIp"]);
            dr.subsets.push_back(std::move(rule));
        }
    }
    return dr;
}

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
    VirtualServiceResolver(const Resource& vs, const Catalog& catalog, const std::vector<IstioGateway>& gateways,
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
    const IstioGateway* find_gateway(const std::string& ref) const {
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
        if (!matches) return out;
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
                const IstioGateway* gw = find_gateway(ref);
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

    // A destination of the route; a DestinationRule with useSourceIp (for the host or the
    // subset) gives the whole service source-IP affinity.
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
        std::optional<uint16_t> port_number;
        if (const YAML::Node port = dest["port"]) {
            if (auto ok = check_fields(port, {"number"}, file_, field + ".destination.port."); !ok)
                return fail(ok.error());
            auto n = scalar_int(port["number"], file_, field + ".destination.port.number", 1, 65535);
            if (!n) return fail(n.error());
            port_number = static_cast<uint16_t>(*n);
        }
        auto port = service_port(*service, port_number, where, field + ".destination.port");
        if (!port) return fail(port.error());

        SubsetSpec subset{.name = **host, .where = {file_, line_of(dest)}};
        Labels labels;
        const DestinationRule* dr = rule_for(service);
        if (dr && dr->source_ip) {
            svc.affinity = Affinity::kSourceIp;
            svc.affinity_where = dr->source_ip_where;
        }
        if (auto name = scalar_or_none(dest["subset"])) {
            subset.name = *name;
            if (!dr)
                return fail(config_error(where + ": " + field + ".destination.subset: \"" + *name +
                                         "\": no DestinationRule defines subsets for host \"" + **host +
                                         "\"; add one with spec.host: " + **host));
            const SubsetRule* rule = nullptr;
            std::string known;
            for (const auto& s : dr->subsets) {
                if (s.name == *name) rule = &s;
                known += (known.empty() ? "" : ", ") + s.name;
            }
            if (!rule)
                return fail(config_error(where + ": " + field + ".destination.subset: \"" + *name +
                                         "\" is not a subset of host \"" + **host + "\"; DestinationRule " + dr->ns +
                                         " (" + dr->where.str() + ") defines: " + (known.empty() ? "none" : known)));
            labels = rule->labels;
            if (rule->source_ip) {
                svc.affinity = Affinity::kSourceIp;
                svc.affinity_where = rule->where;
            }
        }
        const auto workloads = catalog_.select(*service, labels);
        if (workloads.empty())
            return fail(config_error(where + ": " + field + ".destination: " +
                                     (dest["subset"] ? "subset \"" + subset.name + "\" of " : std::string()) +
                                     service->display() + " selects no workload" +
                                     (service->selector ? " (labels " + labels_str(*service->selector) +
                                                              (labels.empty() ? "" : " and " + labels_str(labels)) + ")"
                                                        : std::string(" (it has no selector)")) +
                                     "; add a WorkloadEntry with those labels in namespace " + service->ns));
        auto backends = backend_endpoints(*service, **port, workloads, where, field + ".destination");
        if (!backends) return fail(backends.error());
        subset.backends = *backends;
        for (const Workload* w : workloads) subset.backend_where.push_back(w->where);
        subset.backend_where.resize(subset.backends.size());

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
        return subset;
    }

    const Resource& vs_;
    const std::string& file_;
    const Catalog& catalog_;
    const std::vector<IstioGateway>& gateways_;
    const std::vector<DestinationRule>& rules_;
    Diagnostics& diag_;
};

}  // namespace

Result<std::vector<ServiceSpec>> resolve_istio(const std::vector<Resource>& resources, const Catalog& catalog,
                                               Diagnostics& diag) {
    std::vector<IstioGateway> gateways;
    std::vector<DestinationRule> rules;
    for (const auto& r : resources) {
        if (is_istio(r, "Gateway")) {
            auto gw = parse_gateway(r, diag);
            if (!gw) return fail(gw.error());
            gateways.push_back(std::move(*gw));
        } else if (is_istio(r, "DestinationRule")) {
            auto dr = parse_destination_rule(r, catalog, diag);
            if (!dr) return fail(dr.error());
            rules.push_back(std::move(*dr));
        }
    }
    std::vector<ServiceSpec> out;
    for (const auto& r : resources) {
        if (!is_istio(r, "VirtualService")) continue;
        auto services = VirtualServiceResolver(r, catalog, gateways, rules, diag).resolve();
        if (!services) return fail(services.error());
        for (auto& s : *services) out.push_back(std::move(s));
    }
    return out;
}

}  // namespace tcpshift::mesh
