// SPDX-License-Identifier: GPL-2.0
/*
 * tcpshift data plane for one network namespace.
 *
 * steer (sk_lookup): a new TCP connection to a configured frontend picks a
 * backend from the service's live weight table by a seeded hash, and is
 * assigned to that backend's listening socket.
 *
 * track_sockets (sock_ops): a socket that starts listening where a configured
 * backend lives is put into the "sockets" SOCKHASH, so a backend that starts
 * or restarts is picked up without the agent, and its socket storage names
 * the backend. Every connection the listener accepts inherits that storage,
 * and is accounted for: opened at establishment, closed with its bytes when
 * the socket reaches TCP_CLOSE. It runs for the whole cgroup, so every
 * namespace's sockets pass by: only this namespace's are looked at.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "bpf/abi.h"
#include "bpf/flow_hash.h"

#define AF_INET 2
#define AF_INET6 10

/* Set by the loader between open and load. */
const volatile __u64 hash_seed = 0;    /* random per attach */
const volatile __u64 netns_cookie = 0; /* the namespace this data plane serves */

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
	__uint(max_entries, TS_MAX_SERVICES * TS_TABLE_FAMILIES * TS_TABLE_GENERATIONS);
	__type(key, __u32);
	__type(value, struct ts_table);
} tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, TS_MAX_BACKENDS * TS_GROUP_SLOTS);
	__type(key, __u32); /* TS_SOCKET_KEY(backend id, member) */
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
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct ts_connection);
} connections SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ts_backend_tag);
} backend_tags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ts_backend_stats);
} backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TS_MAX_ROUTES);
	__type(key, struct ts_route_key);
	__type(value, struct ts_backend_stats);
} route_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ts_meta);
} meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TS_MAX_RECENT_FLOWS);
	__type(key, struct ts_flow_key);
	__type(value, __u32); /* backend id */
} recent_flows SEC(".maps");

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

/* The live weight table of a service for clients of `family`; NULL when it has none. */
static __always_inline struct ts_table *service_table(const struct ts_service *service, __u32 service_id,
						      __u32 family)
{
	__u32 table_id = TS_TABLE_ID(service_id, TS_FAMILY_INDEX(family), service->generation & 1);

	return bpf_map_lookup_elem(&tables, &table_id);
}

static __always_inline struct ts_table *live_table(__u32 service_id, __u32 family)
{
	struct ts_service *service = bpf_map_lookup_elem(&services, &service_id);

	return service ? service_table(service, service_id, family) : NULL;
}

static __always_inline __u32 flow_hash(const struct flow *f, __u32 affinity)
{
	if (affinity == TS_AFFINITY_SOURCE_IP)
		return ts_source_hash(f->saddr, hash_seed);
	return ts_flow_hash(f->saddr, f->sport, f->daddr, f->dport, hash_seed);
}

/* The backend in the slot `hash` selects; TS_NO_BACKEND when the table has none. sk_lookup
 * steers by it and sock_ops tells a fallback by it, so both read the table the same way. */
static __always_inline __u32 pick_backend(const struct ts_table *table, __u32 hash)
{
	__u32 slot = hash % TS_TABLE_SLOTS;

	pin_value(slot); /* keep the bound check that clang knows is redundant */
	if (slot >= TS_TABLE_SLOTS)
		return TS_NO_BACKEND;
	return table->slots[slot];
}

/* Assigns a listener of backend_id (any member of its SO_REUSEPORT group; the kernel then
 * spreads over the group); 0 on success. Releases the socket on every path. A global
 * function, so the verifier checks it once instead of at each of the fallback's draws. */
__noinline int assign_backend(struct bpf_sk_lookup *ctx, __u32 backend_id)
{
	struct bpf_sock *sk;
	__u32 member, key;
	long err;

	for (member = 0; member < TS_GROUP_SLOTS; member++) {
		key = TS_SOCKET_KEY(backend_id, member);
		sk = bpf_map_lookup_elem(&sockets, &key);
		if (!sk)
			continue;
		err = bpf_sk_assign(ctx, sk, 0);
		bpf_sk_release(sk);
		if (!err)
			return 0;
	}
	return -1;
}

/* The chosen backend has no listener. Draws again from the same weight table, so the share
 * of a dead backend goes to the live ones in proportion to their weights; when every draw
 * lands on a dead backend (most of the weight is dead), walks the weighted backends. Returns
 * the backend assigned, or -1. */
static __always_inline int assign_fallback(struct bpf_sk_lookup *ctx, const struct ts_table *table,
					   __u32 hash, __u32 dead)
{
	__u32 i, backend_id, count = table->backend_count;

	for (i = 1; i <= TS_FALLBACK_REHASHES; i++) {
		backend_id = pick_backend(table, ts_rehash(hash, i));
		if (backend_id == dead || backend_id == TS_NO_BACKEND)
			continue;
		if (assign_backend(ctx, backend_id) == 0)
			return backend_id;
	}
	if (count == 0 || count > TS_MAX_SERVICE_BACKENDS)
		return -1;
	for (i = 0; i < TS_MAX_SERVICE_BACKENDS; i++) {
		__u32 idx;

		if (i >= count)
			break;
		idx = (hash + i) % count;
		pin_value(idx);
		if (idx >= TS_MAX_SERVICE_BACKENDS)
			break;
		backend_id = table->backends[idx];
		if (backend_id != dead && assign_backend(ctx, backend_id) == 0)
			return backend_id;
	}
	return -1;
}

static __always_inline void flow_key(__u32 family, const struct flow *f, struct ts_flow_key *key)
{
	__u32 i;

	key->family = family;
	for (i = 0; i < 4; i++) {
		key->remote_addr[i] = f->saddr[i];
		key->local_addr[i] = f->daddr[i];
	}
	key->remote_port = f->sport;
	key->local_port = f->dport;
}

/* Around a table change (remember_until_ns), a flow that was given a backend keeps it: the
 * ACK that completes a SYN cookie handshake finds the backend that sent the cookie. */
static __always_inline int assign_remembered(struct bpf_sk_lookup *ctx, const struct ts_flow_key *key)
{
	__u32 *backend_id = bpf_map_lookup_elem(&recent_flows, key);

	return backend_id ? assign_backend(ctx, *backend_id) : -1;
}

/* Assigns the table's choice for the flow, or a fallback; the backend assigned, or -1 when
 * no backend listens. */
static __always_inline int assign_chosen(struct bpf_sk_lookup *ctx, const struct ts_table *table,
					 const struct flow *f)
{
	__u32 hash = flow_hash(f, table->affinity), backend_id = pick_backend(table, hash);

	if (backend_id == TS_NO_BACKEND)
		return -1;
	if (assign_backend(ctx, backend_id) == 0)
		return backend_id;
	return assign_fallback(ctx, table, hash, backend_id);
}

SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx)
{
	struct ts_frontend_ports *ports;
	struct ts_service_stats *stats;
	struct ts_service *service;
	struct ts_flow_key key = {};
	__u32 zero = 0, port;
	struct ts_frontend *fe;
	struct ts_table *table;
	struct flow flow;
	int remember, chosen;

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

	/* From here on the connection is ours: it never falls through to
	 * whatever else listens on the port. sock_ops accounts for it once it is
	 * established; this program runs for every packet that finds no socket
	 * (a SYN, its retransmissions, a SYN cookie's ACK), so it counts nothing
	 * but refusals. */
	service = bpf_map_lookup_elem(&services, &fe->service_id);
	if (!service)
		goto refuse;
	table = service_table(service, fe->service_id, ctx->family);
	if (!table)
		goto refuse;
	remember = service->remember_until_ns && bpf_ktime_get_ns() < service->remember_until_ns;
	if (remember) {
		flow_key(ctx->family, &flow, &key);
		if (assign_remembered(ctx, &key) == 0)
			return SK_PASS;
	}
	chosen = assign_chosen(ctx, table, &flow);
	if (chosen >= 0) {
		if (remember)
			bpf_map_update_elem(&recent_flows, &key, &chosen, BPF_ANY);
		return SK_PASS;
	}

refuse:
	stats = bpf_map_lookup_elem(&service_stats, &fe->service_id);
	if (stats) {
		stats->lookups++;
		stats->no_backend++;
	}
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

static __always_inline __u32 backend_tag(__u32 backend_id)
{
	struct ts_backend_tag *t = bpf_map_lookup_elem(&backend_tags, &backend_id);

	return t ? t->tag : 0;
}

/* Puts a listener into the first free member slot of a backend; a group larger than the
 * slots replaces one member by its cookie, and any registered member serves the group. */
static __always_inline void join_backend(struct bpf_sock_ops *skops, __u32 backend_id)
{
	__u32 member, key;

	for (member = 0; member < TS_GROUP_SLOTS; member++) {
		key = TS_SOCKET_KEY(backend_id, member);
		if (bpf_sock_hash_update(skops, &sockets, &key, BPF_NOEXIST) == 0)
			return;
	}
	key = TS_SOCKET_KEY(backend_id, bpf_get_socket_cookie(skops) % TS_GROUP_SLOTS);
	bpf_sock_hash_update(skops, &sockets, &key, BPF_ANY);
}

/* A socket that starts listening on a backend's (address, port) joins the backend's group in
 * "sockets" (both backends' for a dual-stack listener that serves an IPv4 and an IPv6
 * entry), and its storage names them for the connections it will accept. */
static __always_inline void on_listen(struct bpf_sock_ops *skops)
{
	struct ts_listener_key key = {};
	struct ts_listener *listener;
	struct ts_connection *storage;
	struct bpf_sock *sk;
	__u32 i, id;

	/* Only the listener's own (address, port) registers it: 0.0.0.0 and [::] listeners
	 * have the wildcard address here, so a concrete listener never takes a wildcard key. */
	key.netns_cookie = netns_cookie;
	key.family = skops->family;
	key.port = skops->local_port; /* host byte order */
	sockops_addr(skops, 1, key.addr);
	listener = bpf_map_lookup_elem(&listeners, &key);
	if (!listener)
		return;
	sk = skops->sk;
	if (!sk)
		return;
	storage = bpf_sk_storage_get(&connections, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (storage) {
		storage->flags = TS_CONN_LISTENER;
		storage->service_id = 0;
	}
	for (i = 0; i < 2; i++) {
		id = listener->backend_ids[i];
		if (storage) {
			storage->backend_ids[i] = id;
			storage->tags[i] = id == TS_NO_BACKEND ? 0 : backend_tag(id);
		}
		if (id != TS_NO_BACKEND)
			join_backend(skops, id);
	}
}

/* The connection's 4-tuple as sk_lookup saw it. An IPv4 client accepted by a dual-stack [::]
 * listener has v4-mapped addresses (::ffff:a.b.c.d) here; sk_lookup saw it as IPv4. */
static __always_inline __u32 established_flow(struct bpf_sock_ops *skops, struct flow *f)
{
	__u32 family = skops->family;

	sockops_addr(skops, 0, f->saddr);
	sockops_addr(skops, 1, f->daddr);
	if (family == AF_INET6 && f->daddr[0] == 0 && f->daddr[1] == 0 && f->daddr[2] == bpf_htonl(0xffff)) {
		family = AF_INET;
		f->saddr[0] = f->saddr[3];
		f->daddr[0] = f->daddr[3];
		f->saddr[1] = f->saddr[2] = f->saddr[3] = 0;
		f->daddr[1] = f->daddr[2] = f->daddr[3] = 0;
	}
	/* remote_port is network byte order in the upper half of the word on little-endian
	 * hosts (bpf_ntohl gives the port); local_port is host byte order. */
	f->sport = (__u16)bpf_ntohl(skops->remote_port);
	f->dport = (__u16)skops->local_port;
	return family;
}

/* Counts a connection that came through a frontend: a lookup of its service, and a fallback
 * when it landed elsewhere than the live table's choice for its flow. */
static __always_inline void count_steered(const struct ts_frontend *fe, __u32 family, const struct flow *f,
					  __u32 backend_id)
{
	struct ts_service_stats *stats;
	struct ts_table *table;
	__u32 service_id = fe->service_id;

	stats = bpf_map_lookup_elem(&service_stats, &service_id);
	if (!stats)
		return;
	stats->lookups++;
	table = live_table(service_id, family);
	if (table && pick_backend(table, flow_hash(f, table->affinity)) != backend_id)
		stats->fallbacks++;
}

static __always_inline void on_established(struct bpf_sock_ops *skops)
{
	struct ts_connection *conn;
	struct ts_backend_stats *bs;
	struct ts_frontend *fe;
	struct bpf_sock *sk;
	__u32 backend_id, tag, family;
	struct flow flow;

	sk = skops->sk;
	if (!sk)
		return;
	/* A backend's connection carries its listener's storage, cloned at accept. */
	conn = bpf_sk_storage_get(&connections, sk, 0, 0);
	if (!conn || !(conn->flags & TS_CONN_LISTENER))
		return;
	family = established_flow(skops, &flow);
	if (family == AF_INET6) {
		backend_id = conn->backend_ids[1];
		tag = conn->tags[1];
	} else {
		backend_id = conn->backend_ids[0];
		tag = conn->tags[0];
	}
	/* Not a backend for this family, or a listener registered under an id that has since
	 * gone to another address. */
	if (backend_id == TS_NO_BACKEND || tag != backend_tag(backend_id)) {
		bpf_sk_storage_delete(&connections, sk);
		return;
	}
	conn->backend_ids[0] = backend_id;
	conn->tags[0] = tag;
	conn->flags = 0;
	bs = bpf_map_lookup_elem(&backend_stats, &backend_id);
	if (!bs)
		return;
	bs->opened++;
	fe = find_frontend(family, &flow);
	if (fe) {
		struct ts_route_key route = { .service_id = fe->service_id, .backend_id = backend_id };
		struct ts_backend_stats *rs = bpf_map_lookup_elem(&route_stats, &route);

		conn->flags |= TS_CONN_STEERED;
		conn->service_id = fe->service_id;
		bs->steered++;
		if (rs) {
			rs->steered++;
			rs->opened++;
		}
		count_steered(fe, family, &flow, backend_id);
	}
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

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
	if (!conn || (conn->flags & TS_CONN_LISTENER))
		return;
	/* The peer's FIN: ESTABLISHED -> CLOSE_WAIT, FIN_WAIT1 -> CLOSING, or FIN_WAIT2 ->
	 * CLOSE through TIME_WAIT (an orphan's FIN_WAIT2 timeout looks the same; it is rare). */
	if ((old_state == BPF_TCP_ESTABLISHED && new_state == BPF_TCP_CLOSE_WAIT) ||
	    (old_state == BPF_TCP_FIN_WAIT1 && new_state == BPF_TCP_CLOSING) ||
	    (old_state == BPF_TCP_FIN_WAIT2 && new_state == BPF_TCP_CLOSE))
		conn->flags |= TS_CONN_FIN_IN;
	if (new_state == BPF_TCP_FIN_WAIT1 || new_state == BPF_TCP_LAST_ACK)
		conn->flags |= TS_CONN_FIN_OUT;
	if (new_state != BPF_TCP_CLOSE)
		return;

	received = skops->bytes_received;
	if ((conn->flags & TS_CONN_FIN_IN) && received > 0)
		received--;
	sent = skops->bytes_acked;
	/* Our FIN counts in bytes_acked only once acknowledged: all we sent is acked. */
	if ((conn->flags & TS_CONN_FIN_OUT) && skops->snd_una == skops->snd_nxt && sent > 0)
		sent--;
	backend_id = conn->backend_ids[0];
	/* The id went to another address while the connection was open: its close and bytes
	 * are not the new address's. */
	if (conn->tags[0] != backend_tag(backend_id)) {
		bpf_sk_storage_delete(&connections, sk);
		return;
	}
	bs = bpf_map_lookup_elem(&backend_stats, &backend_id);
	if (bs) {
		bs->closed++;
		bs->bytes_sent += sent;
		bs->bytes_received += received;
	}
	if (conn->flags & TS_CONN_STEERED) {
		struct ts_route_key route = { .service_id = conn->service_id, .backend_id = backend_id };

		bs = bpf_map_lookup_elem(&route_stats, &route);
		if (bs) {
			bs->closed++;
			bs->bytes_sent += sent;
			bs->bytes_received += received;
		}
	}
	bpf_sk_storage_delete(&connections, sk);
}

SEC("sockops")
int track_sockets(struct bpf_sock_ops *skops)
{
	if (bpf_get_netns_cookie(skops) != netns_cookie)
		return 1;
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
