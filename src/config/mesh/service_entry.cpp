// Istio's catalog kinds: WorkloadEntry (a workload's address, labels and named ports) and
// ServiceEntry (hosts, virtual IPs and ports over workloads selected by label or listed inline).
#include "config/mesh/catalog_entries.h"
#include "config/yaml_fields.h"

namespace tcpshift::mesh {

namespace {

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

Result<void> parse_hosts(const YAML::Node& spec, const Resource& r, MeshService& s) {
    const YAML::Node hosts = spec["hosts"];
    if (!hosts || !hosts.IsSequence() || hosts.size() == 0)
        return fail(config_error(r.where.str() + ": spec.hosts: needs at least one host"));
    for (size_t i = 0; i < hosts.size(); ++i) {
        auto h = scalar_string(hosts[i], r.where.file, "spec.hosts[" + std::to_string(i) + "]");
        if (!h) return fail(h.error());
        s.hosts.push_back(*h);
    }
    return {};
}

Result<void> parse_virtual_ips(const YAML::Node& spec, const Resource& r, MeshService& s) {
    const std::string& file = r.where.file;
    const YAML::Node addresses = spec["addresses"];
    if (!addresses) return {};
    for (size_t i = 0; i < addresses.size(); ++i) {
        const std::string field = "spec.addresses[" + std::to_string(i) + "]";
        auto ep = parse_host_address(addresses[i], file, field, "virtual IPs");
        if (!ep) return fail(ep.error());
        if (auto ok = check_virtual_ip(*ep, r, at(addresses[i], file) + ": " + field); !ok) return fail(ok.error());
        s.addresses.push_back(*ep);
    }
    return {};
}

Result<ServicePort> parse_entry_port(const YAML::Node& p, const std::string& file, const std::string& field) {
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
    return port;
}

Result<void> parse_entry_ports(const YAML::Node& spec, const Resource& r, MeshService& s) {
    const YAML::Node ports = spec["ports"];
    if (!ports || !ports.IsSequence() || ports.size() == 0)
        return fail(config_error(r.where.str() + ": spec.ports: needs at least one port"));
    for (size_t i = 0; i < ports.size(); ++i) {
        auto port = parse_entry_port(ports[i], r.where.file, "spec.ports[" + std::to_string(i) + "]");
        if (!port) return fail(port.error());
        s.ports.push_back(*port);
    }
    return {};
}

// The workloads of the entry: those its workloadSelector selects, or its inline endpoints.
Result<void> parse_entry_workloads(const YAML::Node& spec, const Resource& r, Diagnostics& diag, MeshService& s) {
    const std::string& file = r.where.file;
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
    return {};
}

}  // namespace

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
    if (auto ok = parse_hosts(spec, r, s); !ok) return fail(ok.error());
    if (auto ok = parse_virtual_ips(spec, r, s); !ok) return fail(ok.error());
    if (auto ok = parse_entry_ports(spec, r, s); !ok) return fail(ok.error());
    if (auto ok = parse_entry_workloads(spec, r, diag, s); !ok) return fail(ok.error());
    if (const YAML::Node res = spec["resolution"]; res && res.IsScalar() && res.Scalar().starts_with("DNS")) {
        if (auto ok = diag.warn(at(res, file) + ": spec.resolution: " + res.Scalar() +
                                " is not supported; endpoints are taken as IP addresses");
            !ok)
            return fail(ok.error());
    }
    return s;
}

}  // namespace tcpshift::mesh
