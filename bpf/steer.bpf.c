// SPDX-License-Identifier: GPL-2.0
/*
 * tcpshift data plane for one network namespace: one object, so one skeleton, whose two
 * programs share the maps. Each concern is a header of its own:
 *
 *   maps.bpf.h       the maps, and the constants the loader sets
 *   pick.bpf.h       a flow's frontend and the backend its live table picks, for both programs
 *   sk_lookup.bpf.h  "steer": a new connection to a frontend goes to a backend's listener
 *   sock_ops.bpf.h   "register_and_count": listeners register as they start; their
 *                    connections are counted from establishment to close
 *   connect.bpf.h    "connect_v4/v6", "getpeername_v4/v6": a local client's connect() to a
 *                    frontend goes to a backend elsewhere; getpeername() shows the frontend
 *   client.bpf.h     sock_ops for those clients: health of the backends, and counts
 *   socket_options.bpf.h  what a service's policy sets on its connections (keepalive)
 */
#include "bpf/maps.bpf.h"
#include "bpf/pick.bpf.h"
#include "bpf/sk_lookup.bpf.h"
#include "bpf/sock_ops.bpf.h"
#include "bpf/connect.bpf.h"

char LICENSE[] SEC("license") = "GPL";
