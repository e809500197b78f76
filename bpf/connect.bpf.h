/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Connect-time steering, for backends that no listener of this namespace serves (another
 * namespace, another host). "connect_v4" and "connect_v6" (cgroup/connect4, connect6) rewrite
 * the destination of a client's connect() to a frontend into the chosen backend's address;
 * the socket's "clients" storage keeps the virtual address, which "getpeername_v4" and
 * "getpeername_v6" hand back to the application. A draw that lands on a backend that listens
 * here leaves the connect() as it is: sk_lookup steers it when it arrives.
 *
 * Every connect() in the cgroup passes through: one bitmap test lets the ones to other ports
 * go. On an internal error the connect() goes on unchanged and the error is counted.
 */
#ifndef TCPSHIFT_CONNECT_BPF_H
#define TCPSHIFT_CONNECT_BPF_H

#include <linux/in.h>
#include <bpf/bpf_endian.h>

#include "bpf/load.bpf.h"
#include "bpf/pick.bpf.h"

#define SOCK_STREAM 1

static __always_inline int port_is_frontend(__u32 port)
{
	__u32 zero = 0;
	struct ts_frontend_ports *ports = bpf_map_lookup_elem(&frontend_ports, &zero);

	__u32 word = port >> 5;

	/* The mask after the pin stays: a 6.1 verifier does not bound a be16 swap by itself. */
	pin_value(word);
	word &= 65536 / 32 - 1;
	return ports && (ports->bits[word] & (1u << (port & 31)));
}

/* Whether connect-time steering serves the client's namespace: every namespace of the
 * cgroup, unless attach --client-netns named some. */
static __always_inline int client_in_scope(struct bpf_sock_addr *ctx)
{
	__u32 zero = 0;
	struct ts_meta *m = bpf_map_lookup_elem(&meta, &zero);
	__u64 cookie;

	if (!m || !m->client_scoped)
		return 1;
	cookie = bpf_get_netns_cookie(ctx);
	return bpf_map_lookup_elem(&client_scope, &cookie) != NULL;
}

#define TS_TAKES 1
#define TS_OUT 0
#define TS_FULL 2
#define TS_WARM 3

/* Whether a backend drawn from table `table_id` may take a new connection: TS_TAKES when it is
 * available and a place is reserved under its cap, TS_OUT when it is ejected or down (and the
 * table is not in panic), TS_WARM when its warmup turns this draw away, TS_FULL at its cap. A
 * backend that listens here reserves in sk_lookup, where the connection goes. A global
 * function, verified once rather than at each draw. */
__noinline int backend_takes(__u32 backend_id, __u32 table_id, __u64 now)
{
	if (!backend_available(backend_id, now) && !panicking(table_id, now))
		return TS_OUT;
	if (warming_declines(table_id, backend_id, now))
		return TS_WARM;
	if (!backend_is_remote(backend_id) || reserve_connection(backend_id))
		return TS_TAKES;
	return TS_FULL;
}

/* The first choice cannot take the connection: the first fallback_candidate() other than
 * `first` (TS_NO_BACKEND: any) that does. A
 * global function that finds the table by id, so the verifier checks its long loop once. */
__noinline int connect_fallback(__u32 table_id, __u32 hash, __u32 first, __u64 now)
{
	struct ts_table *table = bpf_map_lookup_elem(&tables, &table_id);
	__u32 i, backend_id;
	int r, capped = 0;

	if (!table)
		return TS_NO_BACKEND;
	for (i = 0; i < TS_FALLBACK_STEPS; i++) {
		backend_id = fallback_candidate(table, hash, i);
		if (backend_id == TS_NO_BACKEND) {
			if (i >= TS_FALLBACK_REHASHES)
				break; /* past the walk's end */
			continue;
		}
		if (backend_id == first)
			continue;
		r = backend_takes(backend_id, table_id, now);
		if (r == TS_TAKES)
			return (int)backend_id | (capped ? TS_FALLBACK_CAPPED : 0);
		if (r == TS_FULL)
			capped = 1;
	}
	return TS_NO_BACKEND | (capped ? TS_FALLBACK_CAPPED : 0);
}

/* The table's choice for `hash`, or when it cannot take the connection connect_fallback()'s.
 * When every backend is out, the first choice: a connection that may fail beats a refusal by
 * tcpshift. When every backend that is not out is at its cap, none (TS_NO_BACKEND): the
 * connect() goes to the frontend address, where nothing listens, and is refused. */
static __always_inline __u32 connect_choice(const struct ts_table *table, __u32 table_id, __u32 hash, __u64 now,
					    struct ts_service_stats *stats)
{
	__u32 backend_id, first = slot_backend(table, hash);
	int r, capped;

	if (first == TS_NO_BACKEND)
		return first;
	r = backend_takes(first, table_id, now);
	if (r == TS_TAKES)
		return first;
	capped = r == TS_FULL;
	if (stats && r != TS_WARM)
		(capped ? stats->spills++ : stats->connect_ejected++);
	/* A warming backend may be drawn again (its share is its weight times the factor). */
	r = connect_fallback(table_id, hash, r == TS_WARM ? TS_NO_BACKEND : first, now);
	backend_id = TS_FALLBACK_BACKEND(r);
	if (backend_id != TS_NO_BACKEND)
		return backend_id;
	if (capped || (r & TS_FALLBACK_CAPPED)) {
		if (stats)
			stats->overflows++;
		return TS_NO_BACKEND;
	}
	return first;
}

/* The backend connect-time steering gives this connect() to `fe`; TS_NO_BACKEND when the
 * table has none. Source-ip affinity hashes the client's network namespace: its source
 * address is not bound yet. */
static __always_inline __u32 connect_backend(struct bpf_sock_addr *ctx, const struct ts_frontend *fe, __u32 family,
					     struct ts_service_stats *stats)
{
	struct ts_service *service = bpf_map_lookup_elem(&services, &fe->service_id);
	struct ts_table *table;
	__u32 hash, table_id;

	if (!service)
		return TS_NO_BACKEND;
	table_id = live_table_id(fe->service_id, family);
	table = bpf_map_lookup_elem(&tables, &table_id);
	if (!table || !(table->flags & TS_TABLE_REMOTE))
		return TS_NO_BACKEND;
	if (table->affinity == TS_AFFINITY_SOURCE_IP)
		hash = ts_cookie_hash(bpf_get_netns_cookie(ctx), hash_seed);
	else
		hash = ts_cookie_hash(bpf_get_socket_cookie(ctx), hash_seed);
	return connect_choice(table, table_id, draw(table, fe->service_id, hash), bpf_ktime_get_ns(), stats);
}

/* Records the virtual address and the backend in the socket's storage; NULL on failure. */
static __always_inline struct ts_client *remember_client(struct bpf_sock_addr *ctx, __u32 family, const __u32 vip[4],
							 __u16 port, __u32 service_id, __u32 backend_id)
{
	struct ts_client *c;
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return NULL;
	c = bpf_sk_storage_get(&clients, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!c)
		return NULL;
	c->family = family;
	c->port = port;
	c->addr[0] = vip[0];
	c->addr[1] = vip[1];
	c->addr[2] = vip[2];
	c->addr[3] = vip[3];
	c->service_id = service_id;
	c->backend_id = backend_id;
	c->tag = backend_tag(backend_id);
	c->flags = 0;
	return c;
}

/* What a connect() to (family, daddr, port) becomes; `vip` is the address as the application
 * gave it (v4-mapped for an IPv4 frontend reached through an IPv6 socket). Returns the remote
 * backend to rewrite to, or NULL to leave the connect() alone. */
static __always_inline const struct ts_backend_addr *steer_connect(struct bpf_sock_addr *ctx, __u32 family,
								    const struct flow *f, __u32 vip_family,
								    const __u32 vip[4])
{
	struct ts_frontend_key key = {
		.family = family,
		.port = f->dport,
		.addr = { f->daddr[0], f->daddr[1], f->daddr[2], f->daddr[3] },
	};
	struct ts_backend_addr *backend;
	struct ts_service_stats *stats;
	struct ts_frontend *fe;
	__u32 service_id, backend_id;

	/* A wildcard frontend is every address of this namespace, not every address a client
	 * may connect to: only exact frontends steer here. */
	fe = bpf_map_lookup_elem(&frontends, &key);
	if (!fe || !client_in_scope(ctx))
		return NULL;
	service_id = fe->service_id;
	stats = bpf_map_lookup_elem(&service_stats, &service_id);
	backend_id = connect_backend(ctx, fe, family, stats);
	if (backend_id == TS_NO_BACKEND)
		return NULL;
	backend = bpf_map_lookup_elem(&backend_addrs, &backend_id);
	if (!backend || !(backend->flags & TS_BACKEND_REMOTE))
		return NULL; /* listens here: sk_lookup steers it */
	if (backend->family != family || !remember_client(ctx, vip_family, vip, f->dport, service_id, backend_id)) {
		if (stats)
			stats->connect_errors++;
		return NULL;
	}
	if (stats)
		stats->connects++;
	return backend;
}

SEC("cgroup/connect4")
int connect_v4(struct bpf_sock_addr *ctx)
{
	const struct ts_backend_addr *backend;
	struct flow f = {};
	__u32 port;

	if (ctx->type != SOCK_STREAM)
		return 1;
	port = bpf_ntohs((__u16)ctx->user_port); /* network byte order in the context */
	if (!port_is_frontend(port))
		return 1;
	f.daddr[0] = ctx->user_ip4;
	f.dport = (__u16)port;
	backend = steer_connect(ctx, AF_INET, &f, AF_INET, f.daddr);
	if (backend) {
		ctx->user_ip4 = backend->addr[0];
		ctx->user_port = bpf_htons((__u16)backend->port);
	}
	return 1;
}

SEC("cgroup/connect6")
int connect_v6(struct bpf_sock_addr *ctx)
{
	const struct ts_backend_addr *backend;
	__u32 vip[4], i, port, mapped;
	struct flow f = {};

	if (ctx->type != SOCK_STREAM)
		return 1;
	port = bpf_ntohs((__u16)ctx->user_port);
	if (!port_is_frontend(port))
		return 1;
	for (i = 0; i < 4; i++) {
		__u32 w = ctx->user_ip6[i];

		pin_value(w);
		vip[i] = w;
	}
	f.dport = (__u16)port;
	/* A dual-stack socket reaches an IPv4 frontend at ::ffff:a.b.c.d. */
	mapped = vip[0] == 0 && vip[1] == 0 && vip[2] == bpf_htonl(0xffff);
	if (mapped)
		f.daddr[0] = vip[3];
	else
		for (i = 0; i < 4; i++)
			f.daddr[i] = vip[i];
	backend = steer_connect(ctx, mapped ? AF_INET : AF_INET6, &f, AF_INET6, vip);
	if (!backend)
		return 1;
	if (mapped) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = backend->addr[0];
	} else {
		ctx->user_ip6[0] = backend->addr[0];
		ctx->user_ip6[1] = backend->addr[1];
		ctx->user_ip6[2] = backend->addr[2];
		ctx->user_ip6[3] = backend->addr[3];
	}
	ctx->user_port = bpf_htons((__u16)backend->port);
	return 1;
}

static __always_inline struct ts_client *client_of_addr(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;

	return sk ? bpf_sk_storage_get(&clients, sk, 0, 0) : NULL;
}

/* The peer of a rewritten connection is the virtual address the application asked for. */
SEC("cgroup/getpeername4")
int getpeername_v4(struct bpf_sock_addr *ctx)
{
	struct ts_client *c = client_of_addr(ctx);

	if (c && c->family == AF_INET) {
		ctx->user_ip4 = c->addr[0];
		ctx->user_port = bpf_htons((__u16)c->port);
	}
	return 1;
}

SEC("cgroup/getpeername6")
int getpeername_v6(struct bpf_sock_addr *ctx)
{
	struct ts_client *c = client_of_addr(ctx);

	if (c && c->family == AF_INET6) {
		ctx->user_ip6[0] = c->addr[0];
		ctx->user_ip6[1] = c->addr[1];
		ctx->user_ip6[2] = c->addr[2];
		ctx->user_ip6[3] = c->addr[3];
		ctx->user_port = bpf_htons((__u16)c->port);
	}
	return 1;
}

#endif /* TCPSHIFT_CONNECT_BPF_H */
