// The listeners the SOCKHASH holds for each backend: reading them, naming them by address,
// and inserting one that was listening before its key existed.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/endpoint.h"
#include "base/error.h"
#include "base/netns.h"
#include "compile/plan.h"
#include "dataplane/listener_keys.h"
#include "dataplane/maps.h"

namespace tcpshift {

// One listener the SOCKHASH holds for a backend, as the kernel lists it.
struct BackendSocket {
    uint64_t cookie = 0;
    std::optional<Endpoint> listening_on;  // empty: no listening socket of the namespace has the cookie
    bool serves = false;                   // a connection to the backend's address would reach it
};
// What the SOCKHASH holds for each backend of `plan`, by id, each socket named by the
// kernel's list of listening sockets. The calling thread must be in the namespace `netns`.
Result<std::map<uint32_t, std::vector<BackendSocket>>> backend_sockets(const DataplaneMaps& maps, const Plan& plan,
                                                                       const NetnsId& netns);

// Backends with at least one listener in the SOCKHASH that serves their address.
Result<std::vector<uint32_t>> ready_backends(const DataplaneMaps& maps, const Plan& plan, const NetnsId& netns);

// "listener on 127.0.0.1:9003" or "socket 4711 that listens nowhere in this namespace".
std::string describe(const BackendSocket& socket);

// The socket cookies the SOCKHASH holds for a backend, one per registered group member.
Result<std::vector<uint64_t>> backend_socket_cookies(const DataplaneMaps& maps, uint32_t backend_id);

// Inserts an already listening socket as a member of the listeners of the backends it serves,
// and gives it the storage sock_ops would have given it, so its connections are accounted for.
Result<void> register_listener(const DataplaneMaps& maps, const ListenerIds& ids, int socket_fd);

}  // namespace tcpshift
