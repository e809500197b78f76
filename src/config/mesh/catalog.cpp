#include "config/mesh/mesh.h"

#include <set>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>

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

std::vector<Endpoint> wildcard_frontends(uint16_t port) {
    return {Endpoint{.family = AF_INET, .port = port}, Endpoint{.family = AF_INET6, .port = port}};
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

Result<Endpoint> parse_host_address(const YAML::Node& node, const std::string& file, const std::string& field,
                                    const std::string& what) {
    auto text = scalar_string(node, file, field);
    if (!text) return fail(text.error());
    std::string addr = *text;
    if (const auto slash = addr.find('/'); slash != std::string::npos) {
        const std::string len = addr.substr(slash + 1);
        addr = addr.substr(0, slash);
        if (len != "32" && len != "128")
            return fail(config_error(at(node, file) + ": " + field + ": \"" + *text + "\": tcpshift takes single " +
                                     "addresses (/32 or /128) as " + what + ", not wider prefixes"));
    }
    auto ep = parse_address(addr, 0);
    if (!ep) return fail(config_error(at(node, file) + ": " + field + ": " + ep.error().message));
    return ep;
}

namespace {

bool in_prefix_v4(uint32_t host_order, uint32_t prefix, int bits) {
    return bits == 0 || (host_order >> (32 - bits)) == (prefix >> (32 - bits));
}

// Private, loopback, link-local, shared (CGNAT), benchmarking and reserved ranges (Istio
// allocates virtual IPs from 240.240.0.0/16), and IPv6 unique-local and link-local.
bool is_private(const Endpoint& ep) {
    if (ep.family == AF_INET) {
        const uint32_t a = ntohl(ep.addr[0]);
        for (const auto& [prefix, bits] : {std::pair{0x0a000000u, 8}, {0xac100000u, 12}, {0xc0a80000u, 16},
                                           {0x64400000u, 10}, {0x7f000000u, 8}, {0xa9fe0000u, 16},
                                           {0xc6120000u, 15}, {0xf0000000u, 4}})
            if (in_prefix_v4(a, prefix, bits)) return true;
        return false;
    }
    const uint32_t first = ntohl(ep.addr[0]);
    const bool loopback = ep.addr[0] == 0 && ep.addr[1] == 0 && ep.addr[2] == 0 && ntohl(ep.addr[3]) == 1;
    return loopback || (first >> 25) == (0xfc000000u >> 25) || (first >> 22) == (0xfe800000u >> 22);
}

bool is_multicast(const Endpoint& ep) {
    return ep.family == AF_INET ? (ntohl(ep.addr[0]) >> 28) == 0xe : (ntohl(ep.addr[0]) >> 24) == 0xff;
}

bool annotated_takeover(const Resource& r) {
    // A missing key of a const node is an invalid node: test it before asking its type.
    const YAML::Node metadata = r.node["metadata"];
    if (!metadata || !metadata.IsMap()) return false;
    const YAML::Node annotations = metadata["annotations"];
    if (!annotations || !annotations.IsMap()) return false;
    const YAML::Node value = annotations["tcpshift.io/takeover"];
    return value && value.IsScalar() && value.Scalar() == "true";
}

}  // namespace

Result<void> check_virtual_ip(const Endpoint& vip, const Resource& r, const std::string& where) {
    std::string why;
    if (vip.is_wildcard()) {
        why = "is the unspecified address; a virtual IP names one address";
    } else if (is_multicast(vip)) {
        why = "is a multicast address";
    } else if (vip.family == AF_INET && vip.addr[0] == 0xffffffffu) {
        why = "is the broadcast address";
    } else if (!is_private(vip) && !annotated_takeover(r)) {
        why = "is a public address: its local route would capture this namespace's traffic to the real " +
              vip.address_str() + "; use a private address, or annotate the " + r.kind +
              " with tcpshift.io/takeover: \"true\" to take it over";
    }
    if (why.empty()) return {};
    return fail(config_error(where + ": virtual IP " + vip.address_str() + " " + why));
}

namespace {

bool selects(const Labels& selector, const Labels& labels) {
    for (const auto& [k, v] : selector) {
        auto it = labels.find(k);
        if (it == labels.end() || it->second != v) return false;
    }
    return true;
}

// A workload address: an IP. Istio also allows hostnames and unix sockets, which sk_lookup
// cannot use.
Result<Endpoint> parse_workload_address(const YAML::Node& node, const std::string& file, const std::string& field) {
    auto text = scalar_string(node, file, field);
    if (!text) return fail(text.error());
    auto ep = parse_address(*text, 0);
    if (!ep)
        return fail(config_error(at(node, file) + ": " + field + ": \"" + *text +
                                 "\" is not an IP address; tcpshift steers to local listeners by address"));
    return ep;
}

Result<uint16_t> parse_port_number(const YAML::Node& node, const std::string& file, const std::string& field) {
    auto n = scalar_int(node, file, field, 1, 65535);
    if (!n) return fail(n.error());
    return static_cast<uint16_t>(*n);
}

// The optional `name` and `protocol` of a service port.
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

// A WorkloadEntry spec, or one entry of a ServiceEntry's `endpoints`.
Result<Workload> parse_workload(const YAML::Node& spec, const std::string& file, const std::string& field,
                                Diagnostics& diag) {
    if (!spec || !spec.IsMap()) return fail(config_error(at(spec, file) + ": " + field + ": must be a mapping"));
    if (auto ok = check_fields(spec, {"address", "ports", "labels", "network", "locality", "weight", "serviceAccount"},
                               file, field + ".");
        !ok)
        return fail(ok.error());
    Workload w{.where = {file, line_of(spec)}};
    if (!spec["address"])
        return fail(config_error(at(spec, file) + ": " + field + ".address: missing; give the workload's IP"));
    auto address = parse_workload_address(spec["address"], file, field + ".address");
    if (!address) return fail(address.error());
    w.address = *address;
    auto labels = parse_labels(spec["labels"], file, field + ".labels");
    if (!labels) return fail(labels.error());
    w.labels = *labels;
    if (const YAML::Node ports = spec["ports"]) {
        if (!ports.IsMap()) return fail(config_error(at(ports, file) + ": " + field + ".ports: must map names to ports"));
        for (const auto& kv : ports) {
            auto name = scalar_string(kv.first, file, field + ".ports key");
            if (!name) return fail(name.error());
            auto n = parse_port_number(kv.second, file, field + ".ports." + *name);
            if (!n) return fail(n.error());
            w.ports[*name] = *n;
        }
    }
    if (spec["weight"]) {
        if (auto ok = diag.warn(at(spec["weight"], file) + ": " + field +
                                ".weight: endpoint weights are not supported; the workload gets an equal share");
            !ok)
            return fail(ok.error());
    }
    return w;
}

Result<Workload> parse_workload_entry(const Resource& r, Diagnostics& diag) {
    if (!r.node["spec"]) return fail(config_error(r.where.str() + ": spec: missing; give the workload's address"));
    auto w = parse_workload(r.node["spec"], r.where.file, "spec", diag);
    if (!w) return fail(w.error());
    w->name = r.name;
    w->ns = r.ns;
    w->where = r.where;
    return w;
}

Result<MeshService> parse_service_entry(const Resource& r, Diagnostics& diag) {
    const std::string& file = r.where.file;
    const YAML::Node spec = r.node["spec"];
    if (!spec || !spec.IsMap()) return fail(config_error(r.where.str() + ": spec: missing or not a mapping"));
    if (auto ok = check_fields(spec,
                               {"hosts", "addresses", "ports", "location", "resolution", "endpoints",
                                "workloadSelector", "exportTo", "subjectAltNames"},
                               file, "spec.");
        !ok)
        return fail(ok.error());
    MeshService s{.kind = "ServiceEntry", .name = r.name, .ns = r.ns, .where = r.where};
    const YAML::Node hosts = spec["hosts"];
    if (!hosts || !hosts.IsSequence() || hosts.size() == 0)
        return fail(config_error(r.where.str() + ": spec.hosts: needs at least one host"));
    for (size_t i = 0; i < hosts.size(); ++i) {
        auto h = scalar_string(hosts[i], file, "spec.hosts[" + std::to_string(i) + "]");
        if (!h) return fail(h.error());
        s.hosts.push_back(*h);
    }
    if (const YAML::Node addresses = spec["addresses"]) {
        for (size_t i = 0; i < addresses.size(); ++i) {
            const std::string field = "spec.addresses[" + std::to_string(i) + "]";
            auto ep = parse_host_address(addresses[i], file, field, "virtual IPs");
            if (!ep) return fail(ep.error());
            if (auto ok = check_virtual_ip(*ep, r, at(addresses[i], file) + ": " + field); !ok) return fail(ok.error());
            s.addresses.push_back(*ep);
        }
    }
    const YAML::Node ports = spec["ports"];
    if (!ports || !ports.IsSequence() || ports.size() == 0)
        return fail(config_error(r.where.str() + ": spec.ports: needs at least one port"));
    for (size_t i = 0; i < ports.size(); ++i) {
        const std::string field = "spec.ports[" + std::to_string(i) + "]";
        const YAML::Node p = ports[i];
        if (auto ok = check_fields(p, {"number", "protocol", "name", "targetPort"}, file, field + "."); !ok)
            return fail(ok.error());
        ServicePort port{.where = {file, line_of(p)}};
        if (!p["number"]) return fail(config_error(at(p, file) + ": " + field + ".number: missing"));
        auto n = parse_port_number(p["number"], file, field + ".number");
        if (!n) return fail(n.error());
        port.number = *n;
        if (p["targetPort"]) {
            auto t = parse_port_number(p["targetPort"], file, field + ".targetPort");
            if (!t) return fail(t.error());
            port.target_number = *t;
        }
        if (auto ok = read_name_and_protocol(p, file, field, port); !ok) return fail(ok.error());
        s.ports.push_back(port);
    }
    if (const YAML::Node selector = spec["workloadSelector"]) {
        if (auto ok = check_fields(selector, {"labels"}, file, "spec.workloadSelector."); !ok) return fail(ok.error());
        auto labels = parse_labels(selector["labels"], file, "spec.workloadSelector.labels");
        if (!labels) return fail(labels.error());
        s.selector = *labels;
    }
    if (const YAML::Node endpoints = spec["endpoints"]) {
        for (size_t i = 0; i < endpoints.size(); ++i) {
            auto w = parse_workload(endpoints[i], file, "spec.endpoints[" + std::to_string(i) + "]", diag);
            if (!w) return fail(w.error());
            w->name = r.name + "/endpoints[" + std::to_string(i) + "]";
            w->ns = r.ns;
            s.endpoints.push_back(std::move(*w));
        }
    }
    if (s.selector && !s.endpoints.empty())
        return fail(config_error(r.where.str() + ": spec: workloadSelector and endpoints exclude each other"));
    if (const YAML::Node res = spec["resolution"]; res && res.IsScalar() && res.Scalar().starts_with("DNS")) {
        if (auto ok = diag.warn(at(res, file) + ": spec.resolution: " + res.Scalar() +
                                " is not supported; endpoints are taken as IP addresses");
            !ok)
            return fail(ok.error());
    }
    return s;
}

Result<MeshService> parse_kubernetes_service(const Resource& r, Diagnostics& diag) {
    const std::string& file = r.where.file;
    const YAML::Node spec = r.node["spec"];
    if (!spec || !spec.IsMap()) return fail(config_error(r.where.str() + ": spec: missing or not a mapping"));
    MeshService s{.kind = "Service", .name = r.name, .ns = r.ns, .where = r.where};
    s.hosts = {r.name + "." + r.ns, r.name + "." + r.ns + ".svc", r.name + "." + r.ns + ".svc.cluster.local"};
    if (const YAML::Node selector = spec["selector"]) {
        auto labels = parse_labels(selector, file, "spec.selector");
        if (!labels) return fail(labels.error());
        s.selector = *labels;
    }
    std::vector<std::string> ips;
    if (const YAML::Node ip = spec["clusterIP"]; ip && ip.IsScalar()) ips.push_back(ip.Scalar());
    if (const YAML::Node list = spec["clusterIPs"]; list && list.IsSequence())
        for (const auto& ip : list) {
            auto text = scalar_string(ip, file, "spec.clusterIPs");
            if (!text) return fail(text.error());
            ips.push_back(*text);
        }
    for (const auto& ip : ips) {
        if (ip == "None" || ip.empty()) continue;
        auto ep = parse_address(ip, 0);
        if (!ep) return fail(config_error(at(spec, file) + ": spec.clusterIP: " + ep.error().message));
        if (auto ok = check_virtual_ip(*ep, r, at(spec, file) + ": spec.clusterIP"); !ok) return fail(ok.error());
        if (std::find(s.addresses.begin(), s.addresses.end(), *ep) == s.addresses.end()) s.addresses.push_back(*ep);
    }
    const YAML::Node ports = spec["ports"];
    if (!ports || !ports.IsSequence() || ports.size() == 0)
        return fail(config_error(r.where.str() + ": spec.ports: needs at least one port"));
    for (size_t i = 0; i < ports.size(); ++i) {
        const std::string field = "spec.ports[" + std::to_string(i) + "]";
        const YAML::Node p = ports[i];
        if (!p.IsMap()) return fail(config_error(at(p, file) + ": " + field + ": must be a mapping with a port"));
        ServicePort port{.where = {file, line_of(p)}};
        if (!p["port"]) return fail(config_error(at(p, file) + ": " + field + ".port: missing"));
        auto n = parse_port_number(p["port"], file, field + ".port");
        if (!n) return fail(n.error());
        port.number = *n;
        if (const YAML::Node target = p["targetPort"]) {
            auto t = scalar_string(target, file, field + ".targetPort");
            if (!t) return fail(t.error());
            if (!t->empty() && std::all_of(t->begin(), t->end(), ::isdigit)) {
                auto tn = parse_port_number(target, file, field + ".targetPort");
                if (!tn) return fail(tn.error());
                port.target_number = *tn;
            } else {
                port.target_name = *t;
            }
        }
        if (auto ok = read_name_and_protocol(p, file, field, port); !ok) return fail(ok.error());
        if (!port.protocol.empty() && port.protocol != "TCP") {
            if (auto ok = diag.warn(at(p, file) + ": " + field + ".protocol: " + port.protocol +
                                    " is not steered; tcpshift routes TCP only");
                !ok)
                return fail(ok.error());
        }
        s.ports.push_back(port);
    }
    if (const YAML::Node affinity = spec["sessionAffinity"]; affinity && affinity.IsScalar() &&
                                                             affinity.Scalar() == "ClientIP") {
        if (auto ok = diag.warn(at(affinity, file) +
                                ": spec.sessionAffinity: ClientIP is not applied; use a DestinationRule with "
                                "consistentHash.useSourceIp");
            !ok)
            return fail(ok.error());
    }
    return s;
}

}  // namespace

Result<Catalog> Catalog::build(const std::vector<Resource>& resources, Diagnostics& diag) {
    Catalog c;
    for (const auto& r : resources) {
        const std::string g = r.group();
        if (g == "networking.istio.io" && r.kind == "WorkloadEntry") {
            auto w = parse_workload_entry(r, diag);
            if (!w) return fail(w.error());
            c.workloads_.push_back(std::move(*w));
        } else if (g == "networking.istio.io" && r.kind == "ServiceEntry") {
            auto s = parse_service_entry(r, diag);
            if (!s) return fail(s.error());
            c.services_.push_back(std::move(*s));
        } else if (g.empty() && r.kind == "Service") {
            auto s = parse_kubernetes_service(r, diag);
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
