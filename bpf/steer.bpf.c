// SPDX-License-Identifier: GPL-2.0
/*
 * tcpshift data plane for one network namespace.
 *
 * steer (sk_lookup): a new TCP connection to a configured frontend picks a
 * backend from the service's live weight table by a seeded hash, and is
 * assigned to that backend's listening socket.
 *
 * register_listener (sock_ops): a socket that starts listening where a
 * configured backend lives is put into the "sockets" SOCKHASH, so a backend
 * that starts or restarts is picked up without the agent. It also accounts
 * for every connection a backend accepts: opened at establishment, closed
 * with its bytes when the socket reaches TCP_CLOSE.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "tcpshift/bpf_abi.h"
#include "tcpshift/flow_hash.h"

#define AF_INET 2
#define AF_INET6 10

/* Set by the loader between open and load; random per attach. */
const volatile __u64 hash_seed = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TS_MAX_FRONTENDS);
	__type(key, struct ts_frontend_key);
	__type(value, struct ts_frontend);
} frontends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ts_frontend_ports);
} frontend_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ts_service);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_SERVICES * TS_TABLE_GENERATIONS);
	__type(key, __u32);
	__type(value, struct ts_table);
} tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32); /* backend id */
	__type(value, __u64);
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TS_MAX_LISTENER_KEYS);
	__type(key, struct ts_listener_key);
	__type(value, struct ts_listener);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ts_service_stats);
} service_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TS_MAX_PENDING_FLOWS);
	__type(key, struct ts_flow_key);
	__type(value, struct ts_connection);
} pending_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ts_connection);
} connections SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ts_backend_stats);
} backend_stats SEC(".maps");

/* The addresses and ports of a new connection, read from the context once. */
struct flow {
	__u32 saddr[4]; /* network byte order; IPv4 in [0] */
	__u32 daddr[4]; /* network byte order; IPv4 in [0] */
	__u16 sport;    /* host byte order */
	__u16 dport;    /* host byte order */
};

/* Pins a value in a register so clang cannot rewrite how it was obtained.
 * Without it clang turns "load a or load b, by family" into "load from (a or
 * b)", an offset context pointer that the verifier rejects, and drops bound
 * checks that it can prove but the verifier cannot. */
#define pin_value(v) asm volatile("" : "+r"(v))

static __always_inline void read_flow(struct bpf_sk_lookup *ctx, struct flow *f)
{
	__u32 i;

	if (ctx->family == AF_INET) {
		__u32 s = ctx->remote_ip4, d = ctx->local_ip4;

		pin_value(s);
		pin_value(d);
		f->saddr[0] = s;
		f->daddr[0] = d;
		for (i = 1; i < 4; i++)
			f->saddr[i] = f->daddr[i] = 0;
	} else {
		for (i = 0; i < 4; i++) {
			__u32 s = ctx->remote_ip6[i], d = ctx->local_ip6[i];

			pin_value(s);
			pin_value(d);
			f->saddr[i] = s;
			f->daddr[i] = d;
		}
	}
	f->sport = bpf_ntohs(ctx->remote_port); /* network byte order in the context */
	f->dport = (__u16)ctx->local_port;      /* host byte order in the context */
}

static __always_inline struct ts_frontend *find_frontend(__u32 family, const struct flow *f)
{
	struct ts_frontend_key key = {
		.family = family,
		.port = f->dport,
		.addr = { f->daddr[0], f->daddr[1], f->daddr[2], f->daddr[3] },
	};
	struct ts_frontend *fe;

	fe = bpf_map_lookup_elem(&frontends, &key);
	if (fe)
		return fe;

	key.addr[0] = key.addr[1] = key.addr[2] = key.addr[3] = 0;
	return bpf_map_lookup_elem(&frontends, &key);
}

static __always_inline __u32 flow_hash(const struct flow *f, __u32 affinity)
{
	if (affinity == TS_AFFINITY_SOURCE_IP)
		return ts_source_hash(f->saddr, hash_seed);
	return ts_flow_hash(f->saddr, f->sport, f->daddr, f->dport, hash_seed);
}

static __always_inline void count_backend(__u32 backend_id)
{
	struct ts_backend_stats *bs = bpf_map_lookup_elem(&backend_stats, &backend_id);

	if (bs)
		bs->steered++;
}

/* Remembers which backend a steered handshake went to, for sock_ops to find at establishment. */
static __always_inline void remember_flow(__u32 family, const struct flow *f, __u32 backend_id)
{
	struct ts_flow_key key = {
		.family = family,
		.remote_addr = { f->saddr[0], f->saddr[1], f->saddr[2], f->saddr[3] },
		.local_addr = { f->daddr[0], f->daddr[1], f->daddr[2], f->daddr[3] },
		.remote_port = f->sport,
		.local_port = f->dport,
	};
	struct ts_connection conn = { .backend_id = backend_id, .flags = 0 };

	bpf_map_update_elem(&pending_flows, &key, &conn, BPF_ANY);
}

/* Assigns the listener of backend_id; 0 on success. Releases the socket on every path.
 * With `remember`, records the choice for sock_ops, which cannot recompute it: a fallback,
 * or a lookup soon after the table changed. */
static __always_inline int assign_backend(struct bpf_sk_lookup *ctx, const struct flow *f,
					  __u32 backend_id, int remember)
{
	struct bpf_sock *sk;
	long err;

	sk = bpf_map_lookup_elem(&sockets, &backend_id);
	if (!sk)
		return -1;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err)
		return -1;
	count_backend(backend_id);
	if (remember)
		remember_flow(ctx->family, f, backend_id);
	return 0;
}

SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx)
{
	struct ts_service_stats *stats;
	struct ts_service *service;
	struct ts_frontend *fe;
	struct ts_table *table;
	__u32 service_id, table_id, hash, slot, start, i;
	struct ts_frontend_ports *ports;
	__u32 zero = 0, port;
	struct flow flow;
	__u16 backend_id;
	int remember;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	/* Most connections in a namespace are not to a frontend: let them pass after
	 * one array lookup. */
	ports = bpf_map_lookup_elem(&frontend_ports, &zero);
	if (!ports)
		return SK_PASS;
	port = ctx->local_port;
	if (!(ports->bits[(port >> 5) & (65536 / 32 - 1)] & (1u << (port & 31))))
		return SK_PASS;
	read_flow(ctx, &flow);
	fe = find_frontend(ctx->family, &flow);
	if (!fe)
		return SK_PASS;

	service_id = fe->service_id;
	stats = bpf_map_lookup_elem(&service_stats, &service_id);
	if (stats)
		stats->lookups++;

	/* From here on the connection is ours: it never falls through to
	 * whatever else listens on the port. */
	service = bpf_map_lookup_elem(&services, &service_id);
	if (!service)
		goto refuse;
	table_id = service_id * TS_TABLE_GENERATIONS + (service->generation & 1);
	table = bpf_map_lookup_elem(&tables, &table_id);
	if (!table)
		goto refuse;

	hash = flow_hash(&flow, table->affinity);
	slot = hash % TS_TABLE_SLOTS;
	pin_value(slot); /* keep the bound check that clang knows is redundant */
	if (slot >= TS_TABLE_SLOTS)
		goto refuse;
	backend_id = table->slots[slot];
	if (backend_id == TS_NO_BACKEND)
		goto refuse;
	/* The common case writes nothing: sock_ops recomputes this choice. */
	remember = service->changed_ns && bpf_ktime_get_ns() - service->changed_ns < TS_HANDSHAKE_WINDOW_NS;
	if (assign_backend(ctx, &flow, backend_id, remember) == 0)
		return SK_PASS;

	/* The chosen backend has no listener: walk the weighted backends from
	 * a hash-chosen start so the orphaned share spreads over the others. */
	if (table->backend_count == 0 || table->backend_count > TS_MAX_SERVICE_BACKENDS)
		goto refuse;
	start = hash % table->backend_count;
	for (i = 0; i < TS_MAX_SERVICE_BACKENDS; i++) {
		__u32 idx;

		if (i >= table->backend_count)
			break;
		idx = (start + i) % table->backend_count;
		pin_value(idx);
		if (idx >= TS_MAX_SERVICE_BACKENDS)
			break;
		if (table->backends[idx] == backend_id)
			continue;
		if (assign_backend(ctx, &flow, table->backends[idx], 1) == 0) {
			if (stats)
				stats->fallbacks++;
			return SK_PASS;
		}
	}

refuse:
	if (stats)
		stats->no_backend++;
	return SK_DROP;
}

/* Reads the local or remote address of a socket into addr[4]. */
static __always_inline void sockops_addr(struct bpf_sock_ops *skops, int local, __u32 addr[4])
{
	__u32 a0, a1, a2, a3;

	if (skops->family == AF_INET) {
		a0 = local ? skops->local_ip4 : skops->remote_ip4;
		pin_value(a0);
		addr[0] = a0;
		addr[1] = addr[2] = addr[3] = 0;
		return;
	}
	a0 = local ? skops->local_ip6[0] : skops->remote_ip6[0];
	a1 = local ? skops->local_ip6[1] : skops->remote_ip6[1];
	a2 = local ? skops->local_ip6[2] : skops->remote_ip6[2];
	a3 = local ? skops->local_ip6[3] : skops->remote_ip6[3];
	pin_value(a0);
	pin_value(a1);
	pin_value(a2);
	pin_value(a3);
	addr[0] = a0;
	addr[1] = a1;
	addr[2] = a2;
	addr[3] = a3;
}

/* The backend a connection accepted at (family, addr, port) belongs to: the listener key of
 * that exact address, then the wildcard of the family, then for IPv4 the dual-stack IPv6
 * wildcard (an IPv4 child of a [::] listener). */
static __always_inline struct ts_listener *find_listener(__u64 cookie, __u32 family,
							 const __u32 addr[4], __u32 port)
{
	struct ts_listener_key key = {
		.netns_cookie = cookie,
		.family = family,
		.port = port,
		.addr = { addr[0], addr[1], addr[2], addr[3] },
	};
	struct ts_listener *listener;

	listener = bpf_map_lookup_elem(&listeners, &key);
	if (listener)
		return listener;
	key.addr[0] = key.addr[1] = key.addr[2] = key.addr[3] = 0;
	listener = bpf_map_lookup_elem(&listeners, &key);
	if (listener || family != AF_INET)
		return listener;
	key.family = AF_INET6;
	return bpf_map_lookup_elem(&listeners, &key);
}

static __always_inline void on_listen(struct bpf_sock_ops *skops)
{
	struct ts_listener_key key = {};
	struct ts_listener *listener;
	__u32 backend_id;

	/* Only the listener's own (address, port) registers it: 0.0.0.0 and [::] listeners
	 * have the wildcard address here, so a concrete listener never takes a wildcard key. */
	key.netns_cookie = bpf_get_netns_cookie(skops);
	key.family = skops->family;
	key.port = skops->local_port; /* host byte order */
	sockops_addr(skops, 1, key.addr);
	listener = bpf_map_lookup_elem(&listeners, &key);
	if (!listener)
		return;
	backend_id = listener->backend_id;
	bpf_sock_hash_update(skops, &sockets, &backend_id, BPF_ANY);
}

/* The backend sk_lookup chose for this flow from the live table, when the flow reached a
 * frontend; -1 when it did not (a direct connection) or the table has no backend. */
static __always_inline int steered_backend(__u32 family, const struct flow *f)
{
	struct ts_service *service;
	struct ts_frontend *fe;
	struct ts_table *table;
	__u32 service_id, table_id, slot;
	__u16 backend_id;

	fe = find_frontend(family, f);
	if (!fe)
		return -1;
	service_id = fe->service_id;
	service = bpf_map_lookup_elem(&services, &service_id);
	if (!service)
		return -1;
	table_id = service_id * TS_TABLE_GENERATIONS + (service->generation & 1);
	table = bpf_map_lookup_elem(&tables, &table_id);
	if (!table)
		return -1;
	slot = flow_hash(f, table->affinity) % TS_TABLE_SLOTS;
	pin_value(slot);
	if (slot >= TS_TABLE_SLOTS)
		return -1;
	backend_id = table->slots[slot];
	return backend_id == TS_NO_BACKEND ? -1 : backend_id;
}

static __always_inline void on_established(struct bpf_sock_ops *skops)
{
	struct ts_flow_key key = {};
	struct ts_connection *pending, *conn;
	struct ts_backend_stats *bs;
	struct ts_listener *listener;
	struct bpf_sock *sk;
	__u32 backend_id, i;
	struct flow flow;
	int steered;

	key.family = skops->family;
	sockops_addr(skops, 0, key.remote_addr);
	sockops_addr(skops, 1, key.local_addr);
	/* An IPv4 client accepted by a dual-stack [::] listener has v4-mapped addresses
	 * (::ffff:a.b.c.d); sk_lookup saw it as IPv4. */
	if (key.family == AF_INET6 && key.local_addr[0] == 0 && key.local_addr[1] == 0 &&
	    key.local_addr[2] == bpf_htonl(0xffff)) {
		key.family = AF_INET;
		key.remote_addr[0] = key.remote_addr[3];
		key.local_addr[0] = key.local_addr[3];
		key.remote_addr[1] = key.remote_addr[2] = key.remote_addr[3] = 0;
		key.local_addr[1] = key.local_addr[2] = key.local_addr[3] = 0;
	}
	/* remote_port is network byte order in the upper half of the word on little-endian
	 * hosts (bpf_ntohl gives the port); local_port is host byte order. */
	key.remote_port = (__u16)bpf_ntohl(skops->remote_port);
	key.local_port = (__u16)skops->local_port;
	for (i = 0; i < 4; i++) {
		flow.saddr[i] = key.remote_addr[i];
		flow.daddr[i] = key.local_addr[i];
	}
	flow.sport = key.remote_port;
	flow.dport = key.local_port;

	pending = bpf_map_lookup_elem(&pending_flows, &key);
	if (pending) {
		backend_id = pending->backend_id;
		bpf_map_delete_elem(&pending_flows, &key);
	} else if ((steered = steered_backend(key.family, &flow)) >= 0) {
		backend_id = steered;
	} else {
		/* A direct connection to the backend's own address. */
		listener = find_listener(bpf_get_netns_cookie(skops), key.family, key.local_addr,
					 key.local_port);
		if (!listener)
			return;
		backend_id = listener->backend_id;
	}

	sk = skops->sk;
	if (!sk)
		return;
	conn = bpf_sk_storage_get(&connections, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!conn)
		return;
	conn->backend_id = backend_id;
	conn->flags = 0;
	bs = bpf_map_lookup_elem(&backend_stats, &backend_id);
	if (bs)
		bs->opened++;
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* TCP states, as include/net/tcp_states.h numbers them. */
enum {
	TS_TCP_ESTABLISHED = 1,
	TS_TCP_FIN_WAIT1 = 4,
	TS_TCP_FIN_WAIT2 = 5,
	TS_TCP_CLOSE = 7,
	TS_TCP_CLOSE_WAIT = 8,
	TS_TCP_LAST_ACK = 9,
	TS_TCP_CLOSING = 11,
};

/* Follows an accounted connection to TCP_CLOSE. The kernel's byte counters advance with the
 * sequence numbers, and a FIN takes one: the transitions seen on the way say which FINs to
 * take off, so the counters are payload bytes. */
static __always_inline void on_state_change(struct bpf_sock_ops *skops)
{
	__u32 old_state = skops->args[0], new_state = skops->args[1];
	struct ts_connection *conn;
	struct ts_backend_stats *bs;
	__u64 sent, received;
	struct bpf_sock *sk;
	__u32 backend_id;

	sk = skops->sk;
	if (!sk)
		return;
	conn = bpf_sk_storage_get(&connections, sk, 0, 0);
	if (!conn)
		return;
	/* The peer's FIN: ESTABLISHED -> CLOSE_WAIT, FIN_WAIT1 -> CLOSING, or FIN_WAIT2 ->
	 * CLOSE through TIME_WAIT (an orphan's FIN_WAIT2 timeout looks the same; it is rare). */
	if ((old_state == TS_TCP_ESTABLISHED && new_state == TS_TCP_CLOSE_WAIT) ||
	    (old_state == TS_TCP_FIN_WAIT1 && new_state == TS_TCP_CLOSING) ||
	    (old_state == TS_TCP_FIN_WAIT2 && new_state == TS_TCP_CLOSE))
		conn->flags |= TS_CONN_FIN_IN;
	if (new_state == TS_TCP_FIN_WAIT1 || new_state == TS_TCP_LAST_ACK)
		conn->flags |= TS_CONN_FIN_OUT;
	if (new_state != TS_TCP_CLOSE)
		return;

	received = skops->bytes_received;
	if ((conn->flags & TS_CONN_FIN_IN) && received > 0)
		received--;
	sent = skops->bytes_acked;
	/* Our FIN counts in bytes_acked only once acknowledged: all we sent is acked. */
	if ((conn->flags & TS_CONN_FIN_OUT) && skops->snd_una == skops->snd_nxt && sent > 0)
		sent--;
	backend_id = conn->backend_id;
	bs = bpf_map_lookup_elem(&backend_stats, &backend_id);
	if (bs) {
		bs->closed++;
		bs->bytes_sent += sent;
		bs->bytes_received += received;
	}
	bpf_sk_storage_delete(&connections, sk);
}

SEC("sockops")
int register_listener(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		on_listen(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_established(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		on_state_change(skops);
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
