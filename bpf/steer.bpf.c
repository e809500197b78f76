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
 * that starts or restarts is picked up without the agent.
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

/* Assigns the listener of backend_id; 0 on success. Releases the socket on every path. */
static __always_inline int assign_backend(struct bpf_sk_lookup *ctx, __u32 backend_id)
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
	struct flow flow;
	__u16 backend_id;

	if (ctx->protocol != IPPROTO_TCP)
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
	if (assign_backend(ctx, backend_id) == 0)
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
		if (assign_backend(ctx, table->backends[idx]) == 0) {
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

SEC("sockops")
int register_listener(struct bpf_sock_ops *skops)
{
	struct ts_listener_key key = {};
	struct ts_listener *listener;
	__u32 backend_id;

	if (skops->op != BPF_SOCK_OPS_TCP_LISTEN_CB)
		return 1;

	key.netns_cookie = bpf_get_netns_cookie(skops);
	key.family = skops->family;
	key.port = skops->local_port; /* host byte order */
	if (skops->family == AF_INET) {
		key.addr[0] = skops->local_ip4;
	} else if (skops->family == AF_INET6) {
		key.addr[0] = skops->local_ip6[0];
		key.addr[1] = skops->local_ip6[1];
		key.addr[2] = skops->local_ip6[2];
		key.addr[3] = skops->local_ip6[3];
	} else {
		return 1;
	}

	listener = bpf_map_lookup_elem(&listeners, &key);
	if (!listener)
		return 1;
	backend_id = listener->backend_id;
	bpf_sock_hash_update(skops, &sockets, &backend_id, BPF_ANY);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
