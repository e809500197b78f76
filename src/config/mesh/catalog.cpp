// The catalog the route resolvers look up: services by host or name, their workloads by
// label, and where those workloads listen for a service port.
#include <algorithm>
#include <set>

#include "config/mesh/catalog_entries.h"
#include "config/yaml_fields.h"

namespace tcpshift::mesh {

std::string MeshService::port_list() const {
    std::string s;
    for (const auto& p : ports) s += (s.empty() ? "" : ", ") + std::to_string(p.number);
    return s.empty() ? "none" : s;
}

std::string labels_str(const Labels& labels) {
    std::string s = "{";
    for (const auto& [k, v] : labels) s += (s.size() > 1 ? ", " : "") + k + ": " + v;
    return s + "}";
}

Result<Labels> parse_labels(const YAML::Node& node, const std::string& file, const std::string& field) {
    Labels labels;
    if (!node || node.IsNull()) return labels;
    if (!node.IsMap()) return fail(config_error(at(node, file) + ": " + field + ": must be a mapping of labels"));
    for (const auto& kv : node) {
        auto key = scalar_string(kv.first, file, field + " key");
        if (!key) return fail(key.error());
        auto value = scalar_string(kv.second, file, field + "." + *key);
        if (!value) return fail(value.error());
        labels[*key] = *value;
    }
    return labels;
}

Result<uint16_t> parse_port_number(const YAML::Node& node, const std::string& file, const std::string& field) {
    auto n = scalar_int(node, file, field, 1, 65535);
    if (!n) return fail(n.error());
    return static_cast<uint16_t>(*n);
}

Result<void> read_name_and_protocol(const YAML::Node& p, const std::string& file, const std::string& field,
                                    ServicePort& port) {
    auto name = string_or(p, "name", "", file, field + ".name");
    if (!name) return fail(name.error());
    port.name = *name;
    auto protocol = string_or(p, "protocol", "", file, field + ".protocol");
    if (!protocol) return fail(protocol.error());
    port.protocol = *protocol;
    return {};
}

namespace {

bool selects(const Labels& selector, const Labels& labels) {
    for (const auto& [k, v] : selector) {
        auto it = labels.find(k);
        if (it == labels.end() || it->second != v) return false;
    }
    return true;
}

}  // namespace

Result<Catalog> Catalog::build(const std::vector<Resource>& resources, Diagnostics& diag) {
    Catalog c;
    for (const auto& r : resources) {
        const std::string g = r.group();
        if (g == "networking.istio.io" && r.kind == "WorkloadEntry") {
            auto w = guarded(r, [&] { return parse_workload_entry(r, diag); });
            if (!w) return fail(w.error());
            c.workloads_.push_back(std::move(*w));
        } else if (g == "networking.istio.io" && r.kind == "ServiceEntry") {
            auto s = guarded(r, [&] { return parse_service_entry(r, diag); });
            if (!s) return fail(s.error());
            c.services_.push_back(std::move(*s));
        } else if (g.empty() && r.kind == "Service") {
            auto s = guarded(r, [&] { return parse_kubernetes_service(r, diag); });
            if (!s) return fail(s.error());
            c.services_.push_back(std::move(*s));
        }
    }
    return c;
}

const MeshService* Catalog::find_host(const std::string& host, const std::string& ns) const {
    const MeshService* other_ns = nullptr;
    for (const auto& s : services_) {
        const bool short_match = s.kind == "Service" && host == s.name && s.ns == ns;
        const bool host_match = std::find(s.hosts.begin(), s.hosts.end(), host) != s.hosts.end();
        if (short_match || (host_match && s.ns == ns)) return &s;
        if (host_match && !other_ns) other_ns = &s;
    }
    return other_ns;
}

const MeshService* Catalog::find_named(const std::string& kind, const std::string& name, const std::string& ns) const {
    for (const auto& s : services_)
        if (s.kind == kind && s.name == name && s.ns == ns) return &s;
    return nullptr;
}

std::vector<const Workload*> Catalog::select(const MeshService& service, const Labels& subset) const {
    std::vector<const Workload*> out;
    for (const auto& w : service.endpoints)
        if (selects(subset, w.labels)) out.push_back(&w);
    if (!service.selector) return out;
    for (const auto& w : workloads_)
        if (w.ns == service.ns && selects(*service.selector, w.labels) && selects(subset, w.labels)) out.push_back(&w);
    return out;
}

Result<const ServicePort*> service_port(const MeshService& service, std::optional<uint16_t> number,
                                        const std::string& where, const std::string& field) {
    if (!number) {
        if (service.ports.size() == 1) return &service.ports[0];
        return fail(config_error(where + ": " + field + ": " + service.display() + " has ports " + service.port_list() +
                                 "; name the one to route to"));
    }
    for (const auto& p : service.ports)
        if (p.number == *number) return &p;
    return fail(config_error(where + ": " + field + ": " + service.display() + " has no port " +
                             std::to_string(*number) + "; its ports: " + service.port_list()));
}

Result<std::vector<Endpoint>> backend_endpoints(const MeshService& service, const ServicePort& port,
                                                const std::vector<const Workload*>& workloads,
                                                const std::string& where, const std::string& field) {
    std::vector<Endpoint> out;
    for (const Workload* w : workloads) {
        Endpoint ep = w->address;
        if (auto it = w->ports.find(port.name); !port.name.empty() && it != w->ports.end()) {
            ep.port = it->second;
        } else if (!port.target_name.empty()) {
            auto named = w->ports.find(port.target_name);
            if (named == w->ports.end())
                return fail(config_error(where + ": " + field + ": " + service.display() + " port " +
                                         std::to_string(port.number) + " targets the port named \"" + port.target_name +
                                         "\", which WorkloadEntry " + w->ns + "/" + w->name + " (" + w->where.str() +
                                         ") does not list under spec.ports"));
            ep.port = named->second;
        } else {
            ep.port = port.target_number ? port.target_number : port.number;
        }
        if (std::find(out.begin(), out.end(), ep) == out.end()) out.push_back(ep);
    }
    return out;
}

namespace {

// A Gateway port with no bind address implies both wildcards, 0.0.0.0 and [::], and a
// dual-stack Service has a virtual IP of each family. A family no workload of the service has
// would reset its clients, so neither its wildcard nor its virtual IP is kept.
void drop_unserved_families(ServiceSpec& svc) {
    std::set<int> served;
    for (const auto& subset : svc.subsets)
        for (const auto& b : subset.backends) served.insert(b.family);
    if (served.empty()) return;  // nothing to serve either family; compile says so
    auto unserved = [&](const Endpoint& e) { return !served.count(e.family); };
    for (size_t i = svc.listen.size(); i-- > 0;) {
        const Endpoint& e = svc.listen[i];
        const bool vip = std::find(svc.local_addresses.begin(), svc.local_addresses.end(),
                                   Endpoint{.family = e.family, .addr = e.addr}) != svc.local_addresses.end();
        if (!unserved(e) || !(e.is_wildcard() || vip)) continue;
        svc.listen.erase(svc.listen.begin() + static_cast<std::ptrdiff_t>(i));
        if (i < svc.listen_where.size()) svc.listen_where.erase(svc.listen_where.begin() + static_cast<std::ptrdiff_t>(i));
    }
    std::erase_if(svc.local_addresses, unserved);
}

}  // namespace

Result<std::vector<ServiceSpec>> resolve_mesh_services(const std::vector<Resource>& resources, Diagnostics& diag) {
    auto catalog = Catalog::build(resources, diag);
    if (!catalog) return fail(catalog.error());
    auto istio = resolve_istio(resources, *catalog, diag);
    if (!istio) return fail(istio.error());
    auto gateway = resolve_gateway_api(resources, *catalog, diag);
    if (!gateway) return fail(gateway.error());
    for (auto& s : *gateway) istio->push_back(std::move(s));
    for (auto& s : *istio) drop_unserved_families(s);
    return istio;
}

}  // namespace tcpshift::mesh
