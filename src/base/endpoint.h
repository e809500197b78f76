// IP endpoints as the kernel sees them: family, address in network byte order, port.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace tcpshift {

struct Endpoint {
    int family = 0;                     // AF_INET or AF_INET6
    std::array<uint32_t, 4> addr = {};  // network byte order; IPv4 in addr[0]
    uint16_t port = 0;                  // host byte order

    bool is_wildcard() const { return addr == std::array<uint32_t, 4>{}; }
    // "127.0.0.1:9001", "[::1]:9001", "0.0.0.0:31400"
    std::string str() const;
    // The address alone: "127.0.0.1", "::1".
    std::string address_str() const;
    auto operator<=>(const Endpoint&) const = default;
};

// Fills a sockaddr_in or sockaddr_in6 for bind() or connect(); returns its length.
socklen_t to_sockaddr(const Endpoint& endpoint, sockaddr_storage* out);

// Parses "ADDR:PORT" or "[ADDR6]:PORT". The error says what is wrong with the text;
// the caller adds where it came from.
Result<Endpoint> parse_endpoint(std::string_view text);
// Parses a bare address ("127.0.0.2", "::1") and gives it the port.
Result<Endpoint> parse_address(std::string_view text, uint16_t port);

}  // namespace tcpshift
