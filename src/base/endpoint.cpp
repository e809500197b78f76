#include "base/endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace tcpshift {

std::string Endpoint::address_str() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family, addr.data(), buf, sizeof(buf));
    return buf;
}

std::string Endpoint::str() const {
    if (family == AF_INET6) return "[" + address_str() + "]:" + std::to_string(port);
    return address_str() + ":" + std::to_string(port);
}

socklen_t to_sockaddr(const Endpoint& endpoint, sockaddr_storage* out) {
    *out = {};
    if (endpoint.family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(out);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(endpoint.port);
        std::memcpy(&sin->sin_addr, endpoint.addr.data(), 4);
        return sizeof(*sin);
    }
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(endpoint.port);
    std::memcpy(&sin6->sin6_addr, endpoint.addr.data(), 16);
    return sizeof(*sin6);
}

Result<Endpoint> parse_address(std::string_view text, uint16_t port) {
    Endpoint ep{.port = port};
    std::string host(text);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (inet_pton(AF_INET, host.c_str(), ep.addr.data()) == 1) {
        ep.family = AF_INET;
    } else if (inet_pton(AF_INET6, host.c_str(), ep.addr.data()) == 1) {
        ep.family = AF_INET6;
    } else {
        return fail(config_error("\"" + std::string(text) + "\" is not an IPv4 or IPv6 address"));
    }
    return ep;
}

Result<Endpoint> parse_endpoint(std::string_view text) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
        return fail(config_error("\"" + std::string(text) + "\" is not ADDRESS:PORT (use [ADDR]:PORT for IPv6)"));
    std::string_view host = text.substr(0, colon);
    const std::string_view port_text = text.substr(colon + 1);
    if (host.front() == '[') {
        if (host.back() != ']')
            return fail(config_error("\"" + std::string(text) + "\" has an unclosed '[' around the IPv6 address"));
    } else if (host.find(':') != std::string_view::npos) {
        return fail(config_error("\"" + std::string(text) + "\": write an IPv6 address in brackets, [ADDR]:PORT"));
    }
    long port = -1;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port_text.empty())
        return fail(config_error("\"" + std::string(text) + "\": port \"" + std::string(port_text) + "\" is not a number"));
    if (port < 1 || port > 65535)
        return fail(config_error("\"" + std::string(text) + "\": port " + std::string(port_text) +
                                 " is out of range 1-65535"));
    auto ep = parse_address(host, static_cast<uint16_t>(port));
    if (!ep) return fail(config_error("\"" + std::string(text) + "\": " + ep.error().message));
    return ep;
}

}  // namespace tcpshift
