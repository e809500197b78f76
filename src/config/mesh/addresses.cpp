// Addresses as the mesh kinds write them: single-address prefixes, the wildcards a gateway
// port implies, and the virtual IPs that get a local route.
#include <arpa/inet.h>
#include <sys/socket.h>

#include "config/mesh/mesh.h"
#include "config/yaml_fields.h"

namespace tcpshift::mesh {

std::vector<Endpoint> wildcard_frontends(uint16_t port) {
    return {Endpoint{.family = AF_INET, .port = port}, Endpoint{.family = AF_INET6, .port = port}};
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

}  // namespace tcpshift::mesh
