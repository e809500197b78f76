// The connections the backends of a namespace hold, as the kernel lists them (sock_diag), each
// with the "connections" storage sock_ops gave it, and their closing: a socket destroy, which
// aborts the connection with a reset (RST) to the peer, as `ss -K` does, not a FIN.
//
// Two ways to destroy, probed once per process: a BPF socket iterator that calls the kfunc
// bpf_sock_destroy (Linux 6.5+, a separate BPF object so that the data plane still loads on
// older kernels), and netlink SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY, which Debian and most
// distributions enable). TCPSHIFT_DESTROY=netlink forces the second.
#pragma once

#include <linux/inet_diag.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/endpoint.h"
#include "base/error.h"
#include "base/fd.h"

namespace tcpshift {

// One established connection of a backend, accepted through a frontend.
struct LiveConnection {
    uint64_t cookie = 0;      // SO_COOKIE
    Endpoint local, remote;   // local: the frontend's address (sk_lookup keeps it)
    uint32_t service_id = 0;  // the service whose frontend it came through
    uint32_t backend_id = 0;
    uint64_t established_ns = 0;   // CLOCK_MONOTONIC at establishment; 0: unknown
    uint32_t idle_ms = 0;          // since payload was last received or sent, whichever is later
    int family = 0;                // of the socket (an IPv4 client of a [::] listener: AF_INET6)
    inet_diag_sockid id{};         // as the kernel named it, for SOCK_DESTROY
};

// Established TCP connections of the calling thread's namespace that carry "connections"
// storage (map fd `connections`) marking them steered.
Result<std::vector<LiveConnection>> steered_connections(const Fd& connections);

enum class DestroyPath { kIterator, kNetlink };
const char* destroy_path_name(DestroyPath path);  // "bpf_sock_destroy iterator", "netlink SOCK_DESTROY"

// Which way this kernel destroys sockets: the iterator where it loads, else netlink.
DestroyPath destroy_path();

// Aborts each connection (RST to its peer). Returns how many the kernel destroyed; one that
// closed on its own meanwhile is not an error.
Result<size_t> destroy_connections(const std::vector<LiveConnection>& doomed);

}  // namespace tcpshift
