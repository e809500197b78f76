// Istio Gateway: the TCP servers a VirtualService bound to it may take frontends from.
#include <algorithm>

#include "config/mesh/istio.h"
#include "config/yaml_fields.h"

namespace tcpshift::mesh::istio {

Result<Gateway> parse_gateway(const Resource& r, Diagnostics& diag) {
    const std::string& file = r.where.file;
    const YAML::Node spec = r.node["spec"];
    if (!spec || !spec.IsMap()) return fail(config_error(r.where.str() + ": spec: missing or not a mapping"));
    if (auto ok = check_fields(spec, {"selector", "servers"}, file, "spec."); !ok) return fail(ok.error());
    Gateway gw{.name = r.name, .ns = r.ns, .where = r.where};
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

}  // namespace tcpshift::mesh::istio
