/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The contract between the BPF programs and the C++ side: every map key and
 * value, declared once, in plain C. bpf/steer.bpf.c and userspace/ both
 * include this file; userspace static_asserts the sizes it relies on.
 *
 * Byte orders are named in each field: addresses are always network byte
 * order (as the kernel hands them to sk_lookup and sock_ops), ports are host
 * byte order unless a field says otherwise.
 */
#ifndef TCPSHIFT_BPF_ABI_H
#define TCPSHIFT_BPF_ABI_H

#include <linux/types.h>

/* Map sizes. These are the only place the limits live; userspace reads them
 * back from the loaded maps (bpf_map__max_entries) rather than repeating them. */
#define TS_MAX_SERVICES 256           /* services per network namespace */
#define TS_MAX_SERVICE_BACKENDS 256   /* backends of one service (16 subsets x 16) */
#define TS_MAX_BACKENDS 4096          /* backends per network namespace */
#define TS_MAX_FRONTENDS 1024         /* (address, port) pairs that steer */
#define TS_MAX_LISTENER_KEYS 16384    /* listener keys sock_ops matches */
#define TS_MAX_PENDING_FLOWS 65536    /* steered handshakes not yet established (LRU) */

/* Slots in a weight table. A prime, so that the Maglev permutation
 * (offset + j * skip) mod TS_TABLE_SLOTS visits every slot. One slot is
 * 1/4093 of the traffic: a share is exact to within 0.013 percentage points. */
#define TS_TABLE_SLOTS 4093

/* A weight table exists twice per service: the live one and the spare the
 * next change is written into. services[id].generation says which is live. */
#define TS_TABLE_GENERATIONS 2

#define TS_NO_BACKEND 0xffff

/* Value of "frontend_ports", a one-entry array: bit p is set when some frontend
 * listens on port p. sk_lookup runs for every new connection in the namespace;
 * this bitmap lets the ones to other ports pass after one inlined array lookup
 * instead of two hash lookups. */
struct ts_frontend_ports {
	__u32 bits[65536 / 32];
};

/* Key of the "frontends" hash map: where clients connect. */
struct ts_frontend_key {
	__u32 family;  /* AF_INET or AF_INET6 */
	__u32 port;    /* host byte order */
	__u32 addr[4]; /* network byte order; IPv4 in addr[0]; all zero: any address */
};

struct ts_frontend {
	__u32 service_id; /* index into "services" */
};

/* Value of the "services" array: which of the two tables is live. The
 * generation is one aligned 4-byte word, so the flip is a single atomic store. */
struct ts_service {
	__u32 generation; /* 0 or 1: tables[service_id * 2 + generation] is live */
	__u32 reserved;
	/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) when the live table replaced a different
	 * one; 0 when it never did. Within TS_HANDSHAKE_WINDOW_NS of it, a handshake may
	 * have been steered by the other table, so sk_lookup remembers its choice for
	 * sock_ops; otherwise sock_ops recomputes the choice from the live table. */
	__u64 changed_ns;
};

/* How long after a table change sk_lookup remembers every choice: longer than a
 * handshake with every SYN-ACK retransmission (about 63 s at tcp_synack_retries=5). */
#define TS_HANDSHAKE_WINDOW_NS (120ULL * 1000000000ULL)

#define TS_AFFINITY_NONE 0      /* hash of the 4-tuple */
#define TS_AFFINITY_SOURCE_IP 1 /* hash of the source address only */

/* Value of the "tables" array, index service_id * 2 + generation. */
struct ts_table {
	__u32 affinity;     /* TS_AFFINITY_* */
	__u32 backend_count; /* entries used in backends[] */
	/* Backends that carry weight, the order fallback walks them in. */
	__u16 backends[TS_MAX_SERVICE_BACKENDS];
	/* slot -> backend id; TS_NO_BACKEND when the service has no weight at all */
	__u16 slots[TS_TABLE_SLOTS + 1]; /* the last entry pads to 4 bytes */
};

/* Key of the "listeners" hash map, written by userspace, read by sock_ops:
 * a listening socket with this key is the backend in the value. */
struct ts_listener_key {
	__u64 netns_cookie;
	__u32 family;  /* AF_INET or AF_INET6 */
	__u32 port;    /* host byte order */
	__u32 addr[4]; /* network byte order; all zero: a wildcard listener */
};

struct ts_listener {
	__u32 backend_id;
};

/* Per-CPU counters of a service, the "service_stats" array indexed by service id. */
struct ts_service_stats {
	__u64 lookups;    /* new connections that hit one of the service's frontends */
	__u64 fallbacks;  /* the chosen backend had no listener; another one took it */
	__u64 no_backend; /* no backend had a listener; the connection was refused */
};

/* Key of the "pending_flows" LRU hash: a connection sk_lookup steered, until sock_ops sees
 * it established. The child socket's local address is the frontend's, not the listener's, so
 * this is how sock_ops learns which backend a connection belongs to. */
struct ts_flow_key {
	__u32 family;
	__u32 remote_addr[4]; /* network byte order: the client */
	__u32 local_addr[4];  /* network byte order: the frontend */
	__u16 remote_port;    /* host byte order */
	__u16 local_port;     /* host byte order */
};

/* Value of "pending_flows", and of "connections", the socket-local storage of an accounted
 * connection. */
struct ts_connection {
	__u32 backend_id;
	__u32 flags; /* TS_CONN_*: which FINs the byte counters include */
};

#define TS_CONN_FIN_IN 1  /* the peer's FIN arrived: bytes_received counts it as one byte */
#define TS_CONN_FIN_OUT 2 /* our FIN went out: bytes_acked counts it once it is acked */

/* Per-CPU counters of a backend, the "backend_stats" array indexed by backend id. */
struct ts_backend_stats {
	__u64 steered;        /* new connections handed to this backend's listener */
	__u64 opened;         /* connections established (steered or direct) */
	__u64 closed;         /* of those, closed */
	__u64 bytes_sent;     /* payload bytes the client acknowledged, counted at close */
	__u64 bytes_received; /* payload bytes the backend received, counted at close */
};

#endif /* TCPSHIFT_BPF_ABI_H */
