// Which listening sockets are a plan's backends: the keys sock_ops registers listeners by.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "base/endpoint.h"
#include "compile/plan.h"

namespace tcpshift {

// The backends a listening socket serves, by client family: [0] for IPv4 connections, [1] for
// IPv6 ones; TS_NO_BACKEND for none (ts_listener).
using ListenerIds = std::array<uint32_t, 2>;
// A listener of one backend, at `address`, serving clients of its family.
ListenerIds serving(uint32_t backend_id, const Endpoint& address);

// The listener keys of a plan: which (address, port) a listening socket must have to be a
// backend. A backend is also found by a wildcard listener of its port (0.0.0.0 for an IPv4
// backend; [::] for an IPv6 one, and for an IPv4 one, since a dual-stack listener takes IPv4
// too) when no other backend of the same family shares that wildcard. So one dual-stack
// listener on [::]:P serves both 127.0.0.1:P and [::1]:P.
std::vector<std::pair<Endpoint, ListenerIds>> listener_keys(const Plan& plan);

// The fingerprint sock_ops keeps with a backend's listeners (ts_backend_tag).
uint32_t backend_tag(const Endpoint& address);

}  // namespace tcpshift
