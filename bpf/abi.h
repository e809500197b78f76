/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The contract between the BPF programs and the C++ side: every map key and
 * value, declared once, in plain C. bpf/steer.bpf.c and src/ both
 * include this file; userspace static_asserts the sizes it relies on.
 *
 * Byte orders are named in each field: addresses are always network byte
 * order (as the kernel hands them to sk_lookup and sock_ops), ports are host
 * byte order unless a field says otherwise.
 */
#ifndef TCPSHIFT_BPF_ABI_H
#define TCPSHIFT_BPF_ABI_H

#include <linux/types.h>

/* The layout of every map below. A data plane pinned by a tcpshift with another ABI version
 * is refused, never written with this layout: its "meta" map says which it has. */
#define TS_ABI_VERSION 9

/* Every map of the data plane, by the name it has in the object. X(name) is applied to each.
 * The pinned ones are also their names under the pin directory, the one list that userspace
 * walks to pin, open and grant them; a BPF test checks that the loaded object has exactly
 * the maps of both lists. */
#define TS_PINNED_MAPS(X)                                                                      \
	X(frontends)      /* (address, port) -> service */                                     \
	X(services)       /* service -> how long sk_lookup remembers its choices */             \
	X(tables)         /* the weight tables by service and client family (hash) */          \
	X(sockets)        /* SOCKHASH: the listeners of each backend */                        \
	X(listeners)      /* listener key -> the backends a listener with it serves */         \
	X(service_stats)  /* per-CPU counters by service */                                    \
	X(backend_stats)  /* per-CPU counters by backend */                                    \
	X(frontend_ports) /* bitmap of the ports some frontend listens on */                   \
	X(connections)    /* socket storage: a listener's backend, cloned to what it accepts */ \
	X(backend_tags)   /* backend id -> fingerprint of its address */                       \
	X(route_stats)    /* (service id, backend id) -> counters of connections through it */ \
	X(backend_addrs)  /* backend id -> its address, and how it is reached */               \
	X(backend_health) /* backend id -> failed handshakes and ejection (connect-time) */    \
	X(clients)        /* socket storage: a connect-time client's virtual address, backend */ \
	X(client_scope)   /* netns cookie -> 1: the client namespaces connect-time steering serves */ \
	X(backend_load)   /* backend id -> its established connections and handshakes in flight */ \
	X(backend_sli)    /* backend id -> RTT, retransmits, lifetimes and resets of its closed connections */ \
	X(meta)           /* ABI version and the serial of the applied set the maps hold */
/* Maps only the programs read and write, never pinned: they live as long as the programs. */
#define TS_PROGRAM_MAPS(X)                                                                     \
	X(recent_flows) /* flow -> the backend sk_lookup gave it lately, and its first choice */ \
	X(turns)        /* service -> its round-robin turn counter */

/* Value of "meta", a one-entry array written by userspace. */
struct ts_meta {
	__u32 abi_version;   /* TS_ABI_VERSION of the tcpshift that attached */
	__u32 client_scoped; /* 1: connect-time steering serves only the namespaces in client_scope */
	__u64 applied_serial; /* the applied set the maps hold; applied.json names the same */
	__u64 installing_serial; /* nonzero from the first map write of a change to its end: the
	                          * set it installs. Still set when no writer runs, the writer
	                          * stopped midway and the maps hold parts of both sets. */
};

/* Map sizes. These are the only place the limits live; userspace reads them
 * back from the loaded maps (bpf_map__max_entries) rather than repeating them. */
#define TS_MAX_SERVICES 256           /* services per network namespace */
#define TS_MAX_SERVICE_BACKENDS 256   /* backends of one service (16 subsets x 16) */
#define TS_MAX_BACKENDS 4096          /* backends per network namespace */
#define TS_MAX_FRONTENDS 1024         /* (address, port) pairs that steer */
#define TS_MAX_LISTENER_KEYS 16384    /* listener keys sock_ops matches */
#define TS_MAX_ROUTES 16384           /* (service, backend) pairs counted apart */
#define TS_MAX_CLIENT_NAMESPACES 1024 /* client namespaces attach --client-netns names */
/* Listening sockets one backend may hold in "sockets": the members of a SO_REUSEPORT group
 * (any one of them is enough for the kernel to spread over the whole group). */
#define TS_GROUP_SLOTS 16
/* When the chosen backend has no listener, the flow is hashed again this many times into the
 * same weight table before a walk: each draw picks a backend in proportion to its weight, so
 * a dead backend's share goes to the live ones by weight. */
#define TS_FALLBACK_REHASHES 16

/* Slots in a weight table. A prime, so that the Maglev permutation
 * (offset + j * skip) mod TS_TABLE_SLOTS visits every slot. One slot is
 * 1/4093 of the traffic: a share is within one slot of exact (largest-remainder
 * rounding), 0.025 percentage points, and a non-zero weight below one slot is refused. */
#define TS_TABLE_SLOTS 4093

/* The steps of a warmup ramp (ts_table.warmup_curve): each is 1/TS_WARMUP_STEPS of the
 * duration, at the factor of its middle. */
#define TS_WARMUP_STEPS 100

/* A service has a weight table for each client family its frontends serve: an AF_INET
 * listener takes IPv4 clients only, so each family has a table of the backends that can take
 * it. "tables" is a hash allocated as it fills, so only the tables that exist hold memory. A
 * change replaces a table by one update of its entry: the kernel links the new element in and
 * unlinks the old one under the bucket lock, so a lookup finds one or the other, whole, and a
 * program still reading the old one keeps it until it returns. A family no frontend serves
 * has no table. */
#define TS_TABLE_FAMILIES 2 /* 0: IPv4 clients, 1: IPv6 clients */
#define TS_FAMILY_INDEX(family) ((family) == 10 /* AF_INET6 */ ? 1 : 0)
#define TS_TABLE_ID(service_id, family_index) ((service_id) * TS_TABLE_FAMILIES + (family_index))

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

/* Value of the "services" array. */
struct ts_service {
	__u64 reserved;
	/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) until which sk_lookup remembers every choice
	 * in "recent_flows"; 0: it remembers nothing. A SYN cookie's final ACK is looked up
	 * again, and a listener that sent no cookie lately resets it: so around a table change,
	 * a flow keeps the backend its SYN was given. Userspace sets it TS_REMEMBER_BEFORE_NS
	 * before its table is replaced and TS_REMEMBER_AFTER_NS past it; to ~0 (always) in a namespace with
	 * net.ipv4.tcp_syncookies=2, where every handshake is a cookie one. */
	__u64 remember_until_ns;
};

#define TS_REMEMBER_BEFORE_NS (500ULL * 1000000ULL)       /* SYNs that precede a table change */
#define TS_REMEMBER_AFTER_NS (60ULL * 1000000000ULL)      /* their ACKs, and SYN retries */
#define TS_MAX_RECENT_FLOWS 65536                          /* remembered choices (LRU) */

/* Key of "recent_flows", an LRU hash: a flow's 4-tuple as sk_lookup sees it. The value is
 * TS_FLOW_CHOICE(assigned backend, the table's first choice). A table that draws by RANDOM or
 * ROUND_ROBIN remembers every flow: its choice cannot be computed again from the flow. */
#define TS_FLOW_CHOICE(assigned, chosen) ((assigned) | ((chosen) << 16))
/* Value of "recent_flows". A memory lapses at until_ns (TS_REMEMBER_AFTER_NS after it was
 * written), so that one left by a handshake that never completed, or by another mode, cannot
 * send a later connection of the same 4-tuple past the weights or a cap. */
struct ts_flow_memory {
	__u32 choice; /* TS_FLOW_CHOICE(assigned, chosen) */
	__u32 reserved;
	__u64 until_ns; /* bpf_ktime_get_ns() */
};
#define TS_FLOW_ASSIGNED(v) ((v) & 0xffff)
#define TS_FLOW_CHOSEN(v) ((v) >> 16)
struct ts_flow_key {
	__u32 family;
	__u32 remote_addr[4]; /* network byte order: the client */
	__u32 local_addr[4];  /* network byte order: the frontend */
	__u16 remote_port;    /* host byte order */
	__u16 local_port;     /* host byte order */
};

#define TS_AFFINITY_NONE 0      /* hash of the 4-tuple */
#define TS_AFFINITY_SOURCE_IP 1 /* hash of the source address only */

/* Value of the "tables" hash, key TS_TABLE_ID(service, family index). */
struct ts_table {
	__u32 affinity;     /* TS_AFFINITY_* */
	__u32 backend_count; /* entries used in backends[] */
	__u32 flags;         /* TS_TABLE_* */
	/* Slots in use, 1..TS_TABLE_SLOTS: the Maglev table size (a prime) of a hashing table,
	 * or the length of a round-robin cycle; slots past it are never read. */
	__u32 slot_count;
	__u32 balance;       /* TS_BALANCE_* */
	/* TCP keepalive of every connection the service accepts, when flags has
	 * TS_TABLE_KEEPALIVE: seconds idle before the first probe, seconds between probes, and
	 * unanswered probes before the connection is dropped; 0 keeps the kernel's setting. */
	__u32 keepalive_time;
	__u32 keepalive_interval;
	__u32 keepalive_probes;
	/* Istio's outlierDetection.minHealthPercent: while fewer than this share of the table's
	 * backends are available (neither ejected nor down by the probe), ejections are ignored and
	 * every backend takes its weight (Envoy's panic mode). 0: never. */
	__u32 min_health_percent;
	__u32 reserved;
	/* Istio's loadBalancer.warmup, when flags has TS_TABLE_WARMUP: a backend that became ready
	 * (backend_health.ready_ns) less than warmup_ns ago takes a connection drawn for it with
	 * probability warmup_curve[age * TS_WARMUP_STEPS / warmup_ns] / 65536, and the draw is made
	 * again otherwise; so its weight is scaled by that factor, which userspace computes with
	 * Envoy's slow-start formula, max(minimumPercent, (age / duration)^(1/aggression)). */
	__u64 warmup_ns;
	__u16 warmup_curve[TS_WARMUP_STEPS];
	/* Backends that carry weight, the order fallback walks them in; a subset's are together. */
	__u16 backends[TS_MAX_SERVICE_BACKENDS];
	/* For the backend at each position of backends[]: the first position of its subset and
	 * how many backends the subset has there. LEAST_CONN draws its second choice among them. */
	__u16 group_first[TS_MAX_SERVICE_BACKENDS];
	__u16 group_size[TS_MAX_SERVICE_BACKENDS];
	/* slot -> position in backends[] of its backend, one byte a slot (TS_MAX_SERVICE_BACKENDS
	 * is 256); a position at or past backend_count (0xff in a table without weight) names
	 * no backend. */
	__u8 slots[TS_TABLE_SLOTS + 3]; /* the last three pad to 4 bytes */
};

/* The table names a backend that no listener of this namespace serves: connect-time steering
 * rewrites the destination of a client's connect() for it. */
#define TS_TABLE_REMOTE 1
/* The table names a backend that listens in this namespace: sk_lookup steers to it. */
#define TS_TABLE_LOCAL 2
/* Connections of the service get SO_KEEPALIVE, with the table's keepalive_* settings. */
#define TS_TABLE_KEEPALIVE 4
/* Some backend of the table has max_connections. */
#define TS_TABLE_CAPPED 8
/* A backend that became ready lately ramps up to its weight: warmup_ns, warmup_curve. */
#define TS_TABLE_WARMUP 16

/* How a table is drawn from. HASH: the flow's hash picks the slot (the 4-tuple, the client
 * address or the socket, per affinity). RANDOM: a random number does, for each connection.
 * ROUND_ROBIN: the service's turn counter does, and the slots hold one cycle of a smooth
 * weighted round robin, so every slot_count connections in a row split exactly by weight. */
#define TS_BALANCE_HASH 0
#define TS_BALANCE_RANDOM 1
#define TS_BALANCE_ROUND_ROBIN 2
/* LEAST_CONN: a random slot names a backend (so a subset is drawn by weight), a second backend
 * of the same subset is drawn at random, and the one with fewer active connections takes it:
 * the power of two choices, over the counts in "backend_load". sk_lookup only: connect-time
 * steering draws as RANDOM, since a remote backend's load is only its clients' here. */
#define TS_BALANCE_LEAST_CONN 3

/* Key of the "listeners" hash map, written by userspace, read by sock_ops:
 * a listening socket with this key is the backend in the value. */
struct ts_listener_key {
	__u64 netns_cookie;
	__u32 family;  /* AF_INET or AF_INET6 */
	__u32 port;    /* host byte order */
	__u32 addr[4]; /* network byte order; all zero: a wildcard listener */
};

/* The backends a listener with that key serves, by client family: [0] for IPv4
 * connections, [1] for IPv6 ones; TS_NO_BACKEND for none. A dual-stack [::]
 * listener can serve an IPv4 and an IPv6 backend entry of its port at once. */
struct ts_listener {
	__u32 backend_ids[2];
};

/* Per-CPU counters of a service, the "service_stats" array indexed by service id. */
struct ts_service_stats {
	__u64 lookups;    /* connections to a frontend: established ones plus refused ones */
	__u64 fallbacks;  /* established on another backend than the live table names for the
			   * flow: its backend had no listener (or, rarely, the table changed
			   * during the handshake) */
	__u64 no_backend; /* refused: no backend had a listener (counted per refused packet) */
	__u64 connects;   /* connect() calls rewritten to a remote backend */
	__u64 connect_errors; /* connect() calls left as they were on an internal error */
	__u64 connect_ejected; /* draws that found their backend ejected and drew again */
	__u64 spills;     /* draws that found their backend at its max_connections and drew again */
	__u64 overflows;  /* connections refused because every backend was at its max_connections */
};

/* Key of the "sockets" SOCKHASH: backend_id * TS_GROUP_SLOTS + member. */
#define TS_SOCKET_KEY(backend_id, member) ((backend_id) * TS_GROUP_SLOTS + (member))

/* Value of "connections", the socket-local storage (cloned from a listener to every socket
 * it accepts, BPF_F_CLONE). On a backend's listener it names the backend, so every
 * connection the listener accepts knows its backend whatever steered it: a weight flip
 * during the handshake, a fallback, a SYN cookie, or a direct connection. */
struct ts_connection {
	__u32 backend_ids[2]; /* a listener's, by client family as in ts_listener; a
			       * connection's in [0] */
	__u32 tags[2];        /* backend_tags[backend_ids[i]] when the listener registered */
	__u32 flags;          /* TS_CONN_* */
	__u32 service_id;     /* the service whose frontend the connection came through */
	/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) when the connection was established; 0 on a
	 * listener. The agent closes a connection older than its service's maxConnectionDuration. */
	__u64 established_ns;
};

#define TS_CONN_LISTENER 4 /* the storage of a listener, not yet of a connection */
#define TS_CONN_STEERED 8  /* came through a frontend (service_id is set) */
#define TS_CONN_JUDGED 16  /* its close was judged for the backend's health already */

/* A steered connection that its backend closes or resets within this time of establishment,
 * having written it nothing, is a failure of the backend (outlierDetection for a backend
 * that listens here); one that got a byte is a success. */
#define TS_EARLY_CLOSE_NS (1000ULL * 1000000ULL)
#define TS_CONN_FIN_IN 1  /* the peer's FIN arrived: bytes_received counts it as one byte */
#define TS_CONN_FIN_OUT 2 /* our FIN went out: bytes_acked counts it once it is acked */

/* Value of "backend_tags", indexed by backend id: a fingerprint of the address the id names
 * (ts_backend_tag() in userspace), written with the id. A listener records it when it
 * registers; when the id later names another address, the old listener's connections no
 * longer count as the backend's. */
struct ts_backend_tag {
	__u32 tag;
};

/* Key of "route_stats", a per-CPU hash that userspace fills with one entry per (service,
 * backend) pair of the plan: the connections that reached a backend through that service's
 * frontends. A backend shared by two services counts each service's connections apart. */
struct ts_route_key {
	__u32 service_id;
	__u32 backend_id;
};

/* Per-CPU counters of a backend, the "backend_stats" array indexed by backend id, and of a
 * route, the "route_stats" hash. */
struct ts_backend_stats {
	__u64 steered;        /* connections established through a frontend */
	__u64 opened;         /* connections established (through a frontend or direct) */
	__u64 closed;         /* of those, closed */
	__u64 bytes_sent;     /* payload bytes the client acknowledged, counted at close */
	__u64 bytes_received; /* payload bytes the backend received, counted at close */
};

/* Value of "backend_addrs", an array indexed by backend id, written by userspace with the
 * plan: where a backend listens, and how connections reach it. */
struct ts_backend_addr {
	__u32 family;  /* AF_INET or AF_INET6; 0: the id names no backend */
	__u32 port;    /* host byte order */
	__u32 addr[4]; /* network byte order; IPv4 in addr[0] */
	__u32 flags;   /* TS_BACKEND_* */
	__u32 eject_after; /* consecutive failed handshakes that eject it; 0: never */
	__u64 eject_ns;    /* how long the first ejection lasts (Istio's baseEjectionTime) */
	/* Istio's connectionPool.tcp.maxConnections: established connections plus handshakes in
	 * flight it may hold; at the cap a new connection draws another backend. 0: no cap. */
	__u32 max_connections;
	/* Istio's maxEjectionPercent: a failure ejects it only while the backends of its service
	 * (its family's live table) that are ejected, it included, stay within this share, or
	 * when none is. 100: any number. */
	__u32 max_ejection_percent;
};

/* Not a listener of this namespace (another namespace, another host): reached by rewriting
 * the destination of a client's connect(). */
#define TS_BACKEND_REMOTE 1
/* The longest ejection, in multiples of eject_ns: each ejection in a row lasts one more. */
#define TS_MAX_EJECTION_FACTOR 10

/* Handshakes in flight a capped backend may hold reservations for, and how long a reservation
 * lasts when no establishment releases it (the handshake failed, the client gave up). */
#define TS_MAX_PENDING 32
#define TS_RESERVATION_NS (3ULL * 1000000000ULL)

/* Value of "backend_load", an array indexed by backend id, written by the programs only
 * (userspace zeroes an id that goes to another address). A new connection to a backend with
 * max_connections reserves a slot when it is drawn (sk_lookup, connect()), and gives one back
 * when it is established, so a burst of handshakes cannot overshoot the cap. */
struct ts_backend_load {
	__u32 active;   /* established connections not yet closed, by every path */
	__u32 reserved;
	__u64 pending_until_ns[TS_MAX_PENDING]; /* a reservation, live until then; 0: free */
};

/* Value of "backend_health", an array indexed by backend id. sock_ops writes it as a
 * connect-time client's handshake succeeds or fails, and as a socket backend's steered
 * connections are answered or closed early; the agent's probe writes probe_down. */
struct ts_backend_health {
	__u32 failures;       /* failed connections since the last good one */
	__u32 probe_down;     /* 1: the agent's last probe of it failed */
	__u64 ejected_until_ns; /* bpf_ktime_get_ns() before which it takes no connection */
	__u32 ejections;      /* ejections since the last good handshake */
	__u32 reserved;
	__u64 failed;         /* failed connections, ever (a counter) */
	__u64 ejected;        /* times ejected, ever (a counter) */
	/* bpf_ktime_get_ns() when it became ready, from which a table with TS_TABLE_WARMUP ramps
	 * it up: its first listener started (sock_ops), or the agent's probe found it back after it
	 * was down. 0: ready since tcpshift first saw it, with no warmup. */
	__u64 ready_ns;
	/* SYNs sk_lookup handed to a listener of it whose accept queue was full, ever (a counter):
	 * the kernel drops them (ListenOverflows). With eject_after, each is a failure. */
	__u64 overflows;
};

/* Value of "backend_sli", an array indexed by backend id that sock_ops adds to (atomically) as
 * each of the backend's connections closes, on both paths: what a canary is judged by. The
 * histograms count each value in its bucket (not cumulatively): bucket i < TS_SLI_BUCKETS - 1
 * holds the values under TS_RTT_BOUND_US(i) or TS_DURATION_BOUND_US(i) and at or above the
 * bound before; the last, the rest. Userspace zeroes an id that goes to another address. */
#define TS_SLI_BUCKETS 16
#define TS_RTT_BOUND_US(i) (16ULL << (i))           /* 16 us, 32 us, ... 262 ms */
#define TS_DURATION_BOUND_US(i) (1000ULL << (2 * (i))) /* 1 ms, 4 ms, ... 4^14 ms (3.1 days) */
struct ts_backend_sli {
	/* Connections that ended in a reset (either side's: ESTABLISHED, CLOSE_WAIT or FIN_WAIT1
	 * -> CLOSE) after the backend wrote payload. One before it wrote anything is an early close
	 * in backend_health (within TS_EARLY_CLOSE_NS) or a reset_without_data (later). */
	__u64 reset_after_data;
	__u64 reset_without_data;
	__u64 retransmits;   /* segments retransmitted (total_retrans), summed at close */
	__u64 rtt_count;     /* closed connections with an RTT sample */
	__u64 rtt_sum_us;    /* of their smoothed RTT at close */
	__u64 rtt_buckets[TS_SLI_BUCKETS];
	__u64 duration_count; /* closed connections that were established */
	__u64 duration_sum_us; /* of their lifetimes, establishment to close */
	__u64 duration_buckets[TS_SLI_BUCKETS];
	/* Closed connections to which the backend wrote nothing, however they ended: a canary that
	 * closes without answering clients that half-close after their request fails nothing
	 * else (an upload ends so too), but answers less than its baseline. */
	__u64 unanswered;
};

/* Value of "clients", the socket storage of a client whose connect() was rewritten: the
 * virtual address it asked for, which getpeername() returns, and the backend it got. */
struct ts_client {
	__u32 family;      /* of the virtual address: AF_INET, or AF_INET6 (then maybe v4-mapped) */
	__u32 port;        /* host byte order */
	__u32 addr[4];     /* network byte order, as the application gave it */
	__u32 service_id;
	__u32 backend_id;
	__u32 tag;         /* backend_tags[backend_id] at connect() */
	__u32 flags;       /* TS_CLIENT_* and TS_CONN_FIN_* */
	__u64 established_ns; /* bpf_ktime_get_ns() when the handshake succeeded */
};

#define TS_CLIENT_ESTABLISHED 16 /* the handshake succeeded: opened was counted */
#define TS_CLIENT_DONE 32        /* closed and counted: nothing more to count */

#endif /* TCPSHIFT_BPF_ABI_H */
