// The core Kubernetes Service: the names it answers to, its cluster IPs, and ports whose
// targetPort may name a port of the selected workloads.
#include <algorithm>

#include "config/mesh/catalog_entries.h"
#include "config/yaml_fields.h"

namespace tcpshift::mesh {

namespace {

// spec.clusterIP and spec.clusterIPs, each checked as a virtual IP; "None" (headless) and ""
// give none.
Result<void> parse_cluster_ips(const YAML::Node& spec, const Resource& r, MeshService& s) {
    const std::string& file = r.where.file;
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
    return {};
}

// A targetPort: a number, or the name of a port the workloads list.
Result<void> parse_target_port(const YAML::Node& target, const std::string& file, const std::string& field,
                               ServicePort& port) {
    auto t = scalar_string(target, file, field + ".targetPort");
    if (!t) return fail(t.error());
    if (!t->empty() && std::all_of(t->begin(), t->end(), ::isdigit)) {
        auto tn = parse_port_number(target, file, field + ".targetPort");
        if (!tn) return fail(tn.error());
        port.target_number = *tn;
    } else {
        port.target_name = *t;
    }
    return {};
}

Result<ServicePort> parse_service_port(const YAML::Node& p, const std::string& file, const std::string& field,
                                       Diagnostics& diag) {
    if (!p.IsMap()) return fail(config_error(at(p, file) + ": " + field + ": must be a mapping with a port"));
    ServicePort port{.where = {file, line_of(p)}};
    if (!p["port"]) return fail(config_error(at(p, file) + ": " + field + ".port: missing"));
    auto n = parse_port_number(p["port"], file, field + ".port");
    if (!n) return fail(n.error());
    port.number = *n;
    if (const YAML::Node target = p["targetPort"]) {
        if (auto ok = parse_target_port(target, file, field, port); !ok) return fail(ok.error());
    }
    if (auto ok = read_name_and_protocol(p, file, field, port); !ok) return fail(ok.error());
    if (!port.protocol.empty() && port.protocol != "TCP") {
        if (auto ok = diag.warn(at(p, file) + ": " + field + ".protocol: " + port.protocol +
                                " is not steered; tcpshift routes TCP only");
            !ok)
            return fail(ok.error());
    }
    return port;
}

}  // namespace

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
    if (auto ok = parse_cluster_ips(spec, r, s); !ok) return fail(ok.error());
    const YAML::Node ports = spec["ports"];
    if (!ports || !ports.IsSequence() || ports.size() == 0)
        return fail(config_error(r.where.str() + ": spec.ports: needs at least one port"));
    for (size_t i = 0; i < ports.size(); ++i) {
        auto port = parse_service_port(ports[i], file, "spec.ports[" + std::to_string(i) + "]", diag);
        if (!port) return fail(port.error());
        s.ports.push_back(*port);
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

}  // namespace tcpshift::mesh
