// Kubernetes Gateway API: Gateway (TCP listeners) and TCPRoute.
//
// A TCPRoute rule becomes one tcpshift service, named after the TCPRoute ("-N" for its N-th
// rule, N > 0). Its frontends are the TCP listeners of its parentRefs, narrowed by
// sectionName (a listener's name) and port. Its subsets are the rule's backendRefs, named by
// the referenced object, each with its weight (default 1).
//
// Names and namespaces: a parentRef names a Gateway in its `namespace`, or the route's own;
// a backendRef names a Service (group "", kind Service, the default), a ServiceEntry (group
// networking.istio.io, kind ServiceEntry) or a host (group networking.istio.io, kind
// Hostname), in its `namespace` or the route's own. Cross-namespace references need no
// ReferenceGrant here: one host has no tenants to keep apart.
#include <algorithm>
#include <set>

#include "config/mesh/mesh.h"
#include "config/yaml_fields.h"

namespace tcpshift::mesh {

namespace {

constexpr std::string_view kGatewayApi = "gateway.networking.k8s.io";

struct TcpListener {
    std::string name;
    uint16_t port = 0;
    SourceRef where;
};

struct ApiGateway {
    std::string name;
    std::string ns;
    std::vector<Endpoint> addresses;  // port 0; empty: every address
    std::vector<TcpListener> listeners;
    SourceRef where;
};

bool is_gateway_api(const Resource& r, std::string_view kind) { return r.group() == kGatewayApi && r.kind == kind; }

// spec.addresses: the addresses the Gateway's listeners bind, IPAddress only.
Result<void> parse_gateway_addresses(const YAML::Node& spec, const std::string& file, ApiGateway& gw) {
    const YAML::Node addresses = spec["addresses"];
    if (!addresses) return {};
    for (size_t i = 0; i < addresses.size(); ++i) {
        const std::string field = "spec.addresses[" + std::to_string(i) + "]";
        const YAML::Node a = addresses[i];
        if (auto ok = check_fields(a, {"type", "value"}, file, field + "."); !ok) return fail(ok.error());
        auto type_text = string_or(a, "type", "IPAddress", file, field + ".type");
        if (!type_text) return fail(type_text.error());
        const std::string type = *type_text;
        if (type != "IPAddress")
            return fail(config_error(at(a, file) + ": " + field + ".type: \"" + type +
                                     "\": tcpshift binds IPAddress addresses only"));
        auto value = scalar_string(a["value"], file, field + ".value");
        if (!value) return fail(value.error());
        auto ep = parse_address(*value, 0);
        if (!ep) return fail(config_error(at(a, file) + ": " + field + ".value: " + ep.error().message));
        gw.addresses.push_back(*ep);
    }
    return {};
}

// spec.listeners[i]; `names` holds the names of the listeners before it. A listener of
// another protocol is left out with a warning: nothing, not an error.
Result<std::optional<TcpListener>> parse_listener(const YAML::Node& l, const std::string& file, size_t i,
                                                  std::set<std::string>& names, Diagnostics& diag) {
    const std::string field = "spec.listeners[" + std::to_string(i) + "]";
    if (auto ok = check_fields(l, {"name", "hostname", "port", "protocol", "tls", "allowedRoutes"}, file, field + ".");
        !ok)
        return fail(ok.error());
    TcpListener listener{.where = {file, line_of(l)}};
    auto name = optional_string(l, "name", file, field + ".name");
    if (!name) return fail(name.error());
    if (!*name) return fail(config_error(at(l, file) + ": " + field + ".name: missing"));
    listener.name = **name;
    if (!names.insert(listener.name).second)
        return fail(config_error(at(l, file) + ": " + field + ".name: listener \"" + listener.name +
                                 "\" is defined twice"));
    if (!l["port"]) return fail(config_error(at(l, file) + ": " + field + ".port: missing"));
    auto port = scalar_int(l["port"], file, field + ".port", 1, 65535);
    if (!port) return fail(port.error());
    listener.port = static_cast<uint16_t>(*port);
    auto protocol_text = string_or(l, "protocol", "", file, field + ".protocol");
    if (!protocol_text) return fail(protocol_text.error());
    const std::string protocol = *protocol_text;
    if (protocol != "TCP") {
        if (auto ok = diag.warn(at(l, file) + ": " + field + ".protocol: " + (protocol.empty() ? "missing" : protocol) +
                                ": tcpshift serves TCP listeners only; this listener is left out");
            !ok)
            return fail(ok.error());
        return std::optional<TcpListener>();
    }
    if (l["tls"]) {
        if (auto ok = diag.warn(at(l["tls"], file) + ": " + field + ".tls: not honoured for a TCP listener"); !ok)
            return fail(ok.error());
    }
    return std::optional<TcpListener>(std::move(listener));
}

Result<ApiGateway> parse_gateway(const Resource& r, Diagnostics& diag) {
    const std::string& file = r.where.file;
    const YAML::Node spec = r.node["spec"];
    if (!spec || !spec.IsMap()) return fail(config_error(r.where.str() + ": spec: missing or not a mapping"));
    if (auto ok = check_fields(spec, {"gatewayClassName", "listeners", "addresses", "infrastructure", "backendTLS"},
                               file, "spec.");
        !ok)
        return fail(ok.error());
    ApiGateway gw{.name = r.name, .ns = r.ns, .where = r.where};
    if (auto ok = parse_gateway_addresses(spec, file, gw); !ok) return fail(ok.error());
    const YAML::Node listeners = spec["listeners"];
    if (!listeners || !listeners.IsSequence() || listeners.size() == 0)
        return fail(config_error(r.where.str() + ": spec.listeners: needs at least one listener"));
    std::set<std::string> names;
    for (size_t i = 0; i < listeners.size(); ++i) {
        auto listener = parse_listener(listeners[i], file, i, names, diag);
        if (!listener) return fail(listener.error());
        if (*listener) gw.listeners.push_back(std::move(**listener));
    }
    return gw;
}

class TcpRouteResolver {
   public:
    TcpRouteResolver(const Resource& route, const Catalog& catalog, const std::vector<ApiGateway>& gateways,
                     Diagnostics& diag)
        : route_(route), file_(route.where.file), catalog_(catalog), gateways_(gateways), diag_(diag) {}

    Result<std::vector<ServiceSpec>> resolve() {
        const YAML::Node spec = route_.node["spec"];
        if (!spec || !spec.IsMap()) return fail(config_error(route_.where.str() + ": spec: missing or not a mapping"));
        if (auto ok = check_fields(spec, {"parentRefs", "rules", "useDefaultGateways"}, file_, "spec."); !ok)
            return fail(ok.error());
        std::vector<Endpoint> frontends;
        std::vector<SourceRef> frontends_where;
        const YAML::Node parents = spec["parentRefs"];
        if (!parents || !parents.IsSequence() || parents.size() == 0)
            return fail(config_error(route_.where.str() + ": spec.parentRefs: needs the Gateway to attach to"));
        for (size_t i = 0; i < parents.size(); ++i) {
            auto ok = attach(parents[i], "spec.parentRefs[" + std::to_string(i) + "]", frontends, frontends_where);
            if (!ok) return fail(ok.error());
        }
        const YAML::Node rules = spec["rules"];
        if (!rules || !rules.IsSequence() || rules.size() == 0)
            return fail(config_error(route_.where.str() + ": spec.rules: needs a rule with backendRefs"));
        if (rules.size() > 1) {
            if (auto ok = diag_.warn(at(rules[1], file_) +
                                     ": spec.rules[1]: a TCPRoute cannot tell its rules apart; only the first one "
                                     "routes");
                !ok)
                return fail(ok.error());
        }
        auto svc = resolve_rule(rules[0], "spec.rules[0]");
        if (!svc) return fail(svc.error());
        svc->listen = frontends;
        svc->listen_where = frontends_where;
        return std::vector<ServiceSpec>{std::move(*svc)};
    }

   private:
    // The Gateway a parentRef names, in its namespace or the route's.
    Result<const ApiGateway*> find_gateway(const YAML::Node& ref, const std::string& field, const std::string& name,
                                           const std::string& ns) const {
        const ApiGateway* gw = nullptr;
        std::string known;
        for (const auto& g : gateways_) {
            if (g.name == name && g.ns == ns) gw = &g;
            known += (known.empty() ? "" : ", ") + g.ns + "/" + g.name;
        }
        if (gw) return gw;
        return fail(config_error(at(ref, file_) + ": " + field + ".name: no Gateway \"" + name +
                                 "\" (gateway.networking.k8s.io) in namespace " + ns +
                                 "; known: " + (known.empty() ? "none" : known)));
    }

    // The frontends of the listeners of `gw` that `section` and `port` select, each once;
    // returns whether any listener was selected.
    static bool add_frontends(const ApiGateway& gw, const std::optional<std::string>& section,
                              const std::optional<int64_t>& port, std::vector<Endpoint>& frontends,
                              std::vector<SourceRef>& where) {
        bool any = false;
        for (const auto& l : gw.listeners) {
            if (section && l.name != *section) continue;
            if (port && l.port != *port) continue;
            any = true;
            std::vector<Endpoint> addresses;
            if (gw.addresses.empty()) {
                addresses = wildcard_frontends(l.port);
            } else {
                for (Endpoint a : gw.addresses) {
                    a.port = l.port;
                    addresses.push_back(a);
                }
            }
            for (const auto& a : addresses) {
                if (std::find(frontends.begin(), frontends.end(), a) != frontends.end()) continue;
                frontends.push_back(a);
                where.push_back(l.where);
            }
        }
        return any;
    }

    // A parentRef: the frontends of the Gateway listeners it selects.
    Result<void> attach(const YAML::Node& ref, const std::string& field, std::vector<Endpoint>& frontends,
                        std::vector<SourceRef>& where) {
        if (!ref.IsMap()) return fail(config_error(at(ref, file_) + ": " + field + ": must be a mapping with the Gateway's name"));
        if (auto ok = check_fields(ref, {"group", "kind", "namespace", "name", "sectionName", "port"}, file_,
                                   field + ".");
            !ok)
            return fail(ok.error());
        auto kind_text = string_or(ref, "kind", "Gateway", file_, field + ".kind");
        if (!kind_text) return fail(kind_text.error());
        const std::string kind = *kind_text;
        if (kind != "Gateway")
            return fail(config_error(at(ref, file_) + ": " + field + ".kind: \"" + kind +
                                     "\": a TCPRoute attaches to a Gateway"));
        auto name = scalar_string(ref["name"], file_, field + ".name");
        if (!name) return fail(name.error());
        auto ns = string_or(ref, "namespace", route_.ns, file_, field + ".namespace");
        if (!ns) return fail(ns.error());
        auto gw = find_gateway(ref, field, *name, *ns);
        if (!gw) return fail(gw.error());
        auto section = optional_string(ref, "sectionName", file_, field + ".sectionName");
        if (!section) return fail(section.error());
        std::optional<int64_t> port;
        if (ref["port"]) {
            auto p = scalar_int(ref["port"], file_, field + ".port", 1, 65535);
            if (!p) return fail(p.error());
            port = *p;
        }
        if (add_frontends(**gw, *section, port, frontends, where)) return {};
        std::string listeners;
        for (const auto& l : (*gw)->listeners)
            listeners += (listeners.empty() ? "" : ", ") + l.name + " (" + std::to_string(l.port) + ")";
        return fail(config_error(at(ref, file_) + ": " + field + ": Gateway " + *ns + "/" + *name +
                                 " has no TCP listener" + (*section ? " named \"" + **section + "\"" : "") +
                                 (port ? " on port " + std::to_string(*port) : "") +
                                 "; its TCP listeners: " + (listeners.empty() ? "none" : listeners)));
    }

    Result<ServiceSpec> resolve_rule(const YAML::Node& rule, const std::string& field) {
        if (auto ok = check_fields(rule, {"name", "backendRefs"}, file_, field + "."); !ok) return fail(ok.error());
        ServiceSpec svc{.name = route_.name, .where = route_.where, .origin = route_.key()};
        const YAML::Node refs = rule["backendRefs"];
        if (!refs || !refs.IsSequence() || refs.size() == 0)
            return fail(config_error(at(rule, file_) + ": " + field + ".backendRefs: needs at least one backend"));
        std::set<std::string> names;
        for (size_t j = 0; j < refs.size(); ++j) {
            const std::string bfield = field + ".backendRefs[" + std::to_string(j) + "]";
            auto subset = resolve_backend(refs[j], bfield);
            if (!subset) return fail(subset.error());
            subset->weight_path = {"spec", "rules", "0", "backendRefs", std::to_string(j), "weight"};
            if (!names.insert(subset->name).second)
                return fail(config_error(at(refs[j], file_) + ": " + bfield + ": backend \"" + subset->name +
                                         "\" appears twice in this rule"));
            svc.subsets.push_back(std::move(*subset));
        }
        return svc;
    }

    Result<SubsetSpec> resolve_backend(const YAML::Node& ref, const std::string& field) {
        if (auto ok = check_fields(ref, {"group", "kind", "name", "namespace", "port", "weight"}, file_, field + ".");
            !ok)
            return fail(ok.error());
        const std::string where = at(ref, file_);
        auto group_text = string_or(ref, "group", "", file_, field + ".group");
        if (!group_text) return fail(group_text.error());
        const std::string group = *group_text;
        auto kind_text = string_or(ref, "kind", "Service", file_, field + ".kind");
        if (!kind_text) return fail(kind_text.error());
        const std::string kind = *kind_text;
        auto name = scalar_string(ref["name"], file_, field + ".name");
        if (!name) return fail(name.error());
        auto ns_text = string_or(ref, "namespace", route_.ns, file_, field + ".namespace");
        if (!ns_text) return fail(ns_text.error());
        const std::string ns = *ns_text;
        const MeshService* service = nullptr;
        if (group.empty() && kind == "Service") {
            service = catalog_.find_named("Service", *name, ns);
        } else if (group == "networking.istio.io" && kind == "ServiceEntry") {
            service = catalog_.find_named("ServiceEntry", *name, ns);
        } else if (group == "networking.istio.io" && kind == "Hostname") {
            service = catalog_.find_host(*name, ns);
        } else {
            return fail(config_error(where + ": " + field + ": kind \"" + kind + "\" of group \"" + group +
                                     "\" is not a backend tcpshift knows; use a Service, or a ServiceEntry or Hostname "
                                     "of group networking.istio.io"));
        }
        if (!service)
            return fail(config_error(where + ": " + field + ".name: no " + kind + " \"" + *name + "\" in namespace " +
                                     ns + "; define it with a selector for its WorkloadEntries"));
        std::optional<uint16_t> port_number;
        if (ref["port"]) {
            auto p = scalar_int(ref["port"], file_, field + ".port", 1, 65535);
            if (!p) return fail(p.error());
            port_number = static_cast<uint16_t>(*p);
        }
        auto port = service_port(*service, port_number, where, field + ".port");
        if (!port) return fail(port.error());
        const auto workloads = catalog_.select(*service, {});
        if (workloads.empty())
            return fail(config_error(where + ": " + field + ": " + service->display() + " selects no workload" +
                                     (service->selector ? " (labels " + labels_str(*service->selector) + ")"
                                                        : std::string(" (it has no selector)")) +
                                     "; add a WorkloadEntry with those labels in namespace " + service->ns));
        SubsetSpec subset{.name = *name, .weight = 1, .where = {file_, line_of(ref)}};
        subset.weight_where = subset.where;
        auto backends = backend_endpoints(*service, **port, workloads, where, field);
        if (!backends) return fail(backends.error());
        subset.backends = *backends;
        for (const Workload* w : workloads) subset.backend_where.push_back(w->where);
        subset.backend_where.resize(subset.backends.size());
        if (const YAML::Node w = ref["weight"]) {
            auto weight = scalar_weight(w, file_, field + ".weight");
            if (!weight) return fail(weight.error());
            subset.weight = *weight;
            subset.weight_where = {file_, line_of(w)};
        }
        return subset;
    }

    const Resource& route_;
    const std::string& file_;
    const Catalog& catalog_;
    const std::vector<ApiGateway>& gateways_;
    Diagnostics& diag_;
};

}  // namespace

Result<std::vector<ServiceSpec>> resolve_gateway_api(const std::vector<Resource>& resources, const Catalog& catalog,
                                                     Diagnostics& diag) {
    std::vector<ApiGateway> gateways;
    for (const auto& r : resources) {
        if (!is_gateway_api(r, "Gateway")) continue;
        auto gw = guarded(r, [&] { return parse_gateway(r, diag); });
        if (!gw) return fail(gw.error());
        gateways.push_back(std::move(*gw));
    }
    std::vector<ServiceSpec> out;
    for (const auto& r : resources) {
        if (!is_gateway_api(r, "TCPRoute")) continue;
        auto services = guarded(r, [&] { return TcpRouteResolver(r, catalog, gateways, diag).resolve(); });
        if (!services) return fail(services.error());
        for (auto& s : *services) out.push_back(std::move(s));
    }
    return out;
}

}  // namespace tcpshift::mesh
