// `local` routes for virtual IPs: a connection to an address is looked up by sk_lookup only
// when the address is local to the namespace. tcpshift adds such a route (table local, dev lo)
// for each virtual IP of a mesh route, tagged with its own route protocol so that it removes
// only what it added: `ip route show table local proto 250` lists them.
#pragma once

#include <set>

#include "base/endpoint.h"
#include "base/error.h"

namespace tcpshift {

inline constexpr unsigned char kRouteProtocol = 250;

// Adds `local ADDRESS dev lo table local proto 250` in the calling thread's namespace.
// Returns false, changing nothing, when the address is already local.
Result<bool> add_local_route(const Endpoint& address);
// Removes the route if tcpshift added it; absent is fine.
Result<void> remove_local_route(const Endpoint& address);

// Whether connections to `address` are delivered in the calling thread's namespace: the
// kernel lets a socket bind it (any 127.0.0.0/8 address is, through lo's /8).
bool address_is_local(const Endpoint& address);
// The addresses the interfaces of the calling thread's namespace hold, read once: where a
// backend can listen for sk_lookup. Unlike a bind() test, a namespace with no route at all
// does not make every address look local.
class InterfaceAddresses {
   public:
    static InterfaceAddresses read();
    // Whether an interface holds the address (the port is ignored), or it is a loopback one:
    // 127.0.0.0/8, ::1.
    bool holds(const Endpoint& address) const;

   private:
    std::set<Endpoint> addresses_;  // port 0
};

}  // namespace tcpshift
