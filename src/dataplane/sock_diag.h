// Listening TCP sockets as the kernel lists them (NETLINK_SOCK_DIAG), with the cookies a
// SOCKHASH lookup returns, so what the maps hold can be named by address.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/endpoint.h"
#include "base/error.h"

namespace tcpshift {

struct ListeningSocket {
    Endpoint local;
    uint64_t inode = 0;
    uint64_t cookie = 0;  // SO_COOKIE: what the SOCKHASH holds for it
    bool v6only = false;  // an AF_INET6 socket that takes no IPv4 connection
};

// Sends a NETLINK_SOCK_DIAG dump request (`request`, `size` bytes, its nlmsghdr first) on a new
// socket and hands each reply message to `each` until the dump is done. `what` names the dump
// in an error, which the kernel's error number completes.
Result<void> sock_diag_dump(const void* request, size_t size, const std::string& what,
                            const std::function<void(const nlmsghdr*)>& each);

// TCP sockets in LISTEN state in the calling thread's network namespace.
Result<std::vector<ListeningSocket>> listening_sockets();

// Does a connection to `address` reach `listener` when no BPF steers it: the same address
// and port, or the wildcard of the port in the same family, or an IPv6 wildcard that is not
// v6only for an IPv4 address.
bool listener_serves(const ListeningSocket& listener, const Endpoint& address);

}  // namespace tcpshift
