/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The sk_lookup program "steer": a new TCP connection to a configured frontend picks a backend
 * from the service's live weight table (by a seeded hash, at random, or in turn), and is assigned to that backend's
 * listening socket; when the backend has none, to another backend's, by weight.
 */
#ifndef TCPSHIFT_SK_LOOKUP_BPF_H
#define TCPSHIFT_SK_LOOKUP_BPF_H

#include <linux/in.h>
#include <bpf/bpf_endian.h>

#include "bpf/health.bpf.h"
#include "bpf/load.bpf.h"
#include "bpf/pick.bpf.h"

/* The two fields of the kernel's struct sock that say whether a listener's accept queue is
 * full, relocated by CO-RE against the running kernel's BTF. */
struct sock___ts {
	__u32 sk_ack_backlog;
	__u32 sk_max_ack_backlog;
} __attribute__((preserve_access_index));

/* Whether a listener's accept queue is full (the kernel's sk_acceptq_is_full): the SYN handed
 * to it will be dropped. */
static __always_inline int accept_queue_full(struct bpf_sock *sk)
{
	struct sock___ts *s = (struct sock___ts *)bpf_skc_to_tcp_sock(sk);

	return s && s->sk_ack_backlog > s->sk_max_ack_backlog;
}

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

#define TS_ASSIGNED 0
#define TS_ASSIGNED_FULL 1 /* assigned to a listener whose accept queue is full */

/* Assigns a listener of backend_id (any member of its SO_REUSEPORT group; the kernel then
 * spreads over the group): TS_ASSIGNED, TS_ASSIGNED_FULL, or -1 when none takes it. Releases
 * the socket on every path. A global function, so the verifier checks it once instead of at
 * each of the fallback's draws. */
__noinline int assign_backend(struct bpf_sk_lookup *ctx, __u32 backend_id)
{
	struct bpf_sock *sk;
	__u32 member, key;
	long err;
	int full;

	for (member = 0; member < TS_GROUP_SLOTS; member++) {
		key = TS_SOCKET_KEY(backend_id, member);
		sk = bpf_map_lookup_elem(&sockets, &key);
		if (!sk)
			continue;
		full = accept_queue_full(sk);
		err = bpf_sk_assign(ctx, sk, 0);
		bpf_sk_release(sk);
		if (!err)
			return full ? TS_ASSIGNED_FULL : TS_ASSIGNED;
	}
	return -1;
}

#define TS_TAKEN 0
#define TS_NO_LISTENER 1
#define TS_CAPPED 2
#define TS_EJECTED 3
#define TS_WARMING 4
/* take_backend()'s table_id when the backend takes the connection ejected or warming. */
#define TS_ANY_STATE 0xffffffff

/* Hands the connection to backend_id, drawn from table `table_id`: reserves a place under its
 * cap, then assigns one of its listeners. TS_TAKEN, TS_NO_LISTENER, TS_CAPPED when the backend
 * is at its cap, TS_EJECTED when it is ejected (and the table is not in panic), or TS_WARMING when its warmup turns this draw
 * away (neither for TS_ANY_STATE). A global function, verified once rather than at each draw
 * of the fallback. */
__noinline int take_backend(struct bpf_sk_lookup *ctx, __u32 backend_id, __u32 table_id)
{
	__u64 now;
	int r;

	if (table_id != TS_ANY_STATE) {
		now = bpf_ktime_get_ns();
		if (!backend_available(backend_id, now) && !panicking(table_id, now))
			return TS_EJECTED;
		if (warming_declines(table_id, backend_id, now))
			return TS_WARMING;
	}
	if (!reserve_connection(backend_id))
		return TS_CAPPED;
	r = assign_backend(ctx, backend_id);
	/* Handed to a full accept queue, the SYN is dropped: a failure of the backend's. */
	if (r == TS_ASSIGNED_FULL && table_id != TS_ANY_STATE)
		note_overflow(backend_id, table_id / TS_TABLE_FAMILIES);
	if (r >= 0)
		return TS_TAKEN;
	if (backend_cap(backend_id))
		release_reservation(backend_id);
	return TS_NO_LISTENER;
}

/* The first choice cannot take the connection: assigns the first fallback_candidate() other
 * than `first` (TS_NO_BACKEND: any) that takes it. A global function that finds the table by
 * id, so the verifier checks its long loop once, not once for every way steer() reaches it. */
__noinline int assign_fallback(struct bpf_sk_lookup *ctx, __u32 table_id, __u32 hash, __u32 first)
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
		r = take_backend(ctx, backend_id, table_id);
		if (r == TS_TAKEN)
			return (int)backend_id | (capped ? TS_FALLBACK_CAPPED : 0);
		if (r == TS_CAPPED)
			capped = 1;
	}
	return TS_NO_BACKEND | (capped ? TS_FALLBACK_CAPPED : 0);
}

static __always_inline __u32 active_connections(__u32 backend_id)
{
	struct ts_backend_load *load = bpf_map_lookup_elem(&backend_load, &backend_id);

	return load ? load->active : 0;
}

/* LEAST_CONN: of `first` and another backend of its subset drawn at random, the one with fewer
 * active connections (`first` on a tie). A subset's backends weigh the same, so the counts
 * compare as they are. A global function that finds the table by id: its search for `first`
 * is verified once. */
__noinline __u32 less_loaded(__u32 table_id, __u32 first)
{
	struct ts_table *table = bpf_map_lookup_elem(&tables, &table_id);
	__u32 pos, count, group, size, other, peer;

	if (!table)
		return first;
	count = table->backend_count;
	for (pos = 0; pos < TS_MAX_SERVICE_BACKENDS && pos < count; pos++)
		if (table->backends[pos] == first)
			break;
	if (pos >= count || pos >= TS_MAX_SERVICE_BACKENDS)
		return first;
	group = table->group_first[pos];
	size = table->group_size[pos];
	if (size < 2 || group > pos || pos - group >= size)
		return first;
	other = group + (pos - group + 1 + bpf_get_prandom_u32() % (size - 1)) % size;
	pin_value(other);
	if (other >= TS_MAX_SERVICE_BACKENDS)
		return first;
	peer = table->backends[other];
	return active_connections(peer) < active_connections(first) ? peer : first;
}

/* Around a table change (remember_until_ns), a flow that was given a backend keeps it: the
 * ACK that completes a SYN cookie handshake finds the backend that sent the cookie. */
static __always_inline int assign_remembered(struct bpf_sk_lookup *ctx, const struct ts_flow_key *key)
{
	struct ts_flow_memory *m = bpf_map_lookup_elem(&recent_flows, key);

	if (!m || bpf_ktime_get_ns() >= m->until_ns)
		return -1;
	return assign_backend(ctx, TS_FLOW_ASSIGNED(m->choice)) >= 0 ? 0 : -1;
}

/* Assigns the table's choice for the flow, or a fallback; the backend assigned, or -1 when
 * no backend can take it. Sets *chosen to the table's first choice, and *capped when a backend
 * was passed over for its cap. */
static __always_inline int assign_chosen(struct bpf_sk_lookup *ctx, const struct ts_table *table, __u32 table_id,
					 __u32 service_id, const struct flow *f, __u32 *chosen, int *capped)
{
	__u32 hash, backend_id = pick_backend(table, service_id, f, &hash);
	int r, first;

	if (backend_id != TS_NO_BACKEND && table->balance == TS_BALANCE_LEAST_CONN)
		backend_id = less_loaded(table_id, backend_id);
	*chosen = backend_id;
	if (backend_id == TS_NO_BACKEND)
		return -1;
	first = take_backend(ctx, backend_id, table_id);
	if (first == TS_TAKEN)
		return backend_id;
	if (first == TS_CAPPED)
		*capped = 1;
	/* A warming backend may be drawn again: its share is then its weight times the factor,
	 * as rejection sampling gives; one that cannot take it for good is skipped. */
	r = assign_fallback(ctx, table_id, hash, first == TS_WARMING ? TS_NO_BACKEND : backend_id);
	if (r & TS_FALLBACK_CAPPED)
		*capped = 1;
	if (TS_FALLBACK_BACKEND(r) != TS_NO_BACKEND)
		return TS_FALLBACK_BACKEND(r);
	/* Every backend that could take it is ejected or turned it away warming: the first choice
	 * takes it after all, as connect-time steering does, since a connection that may fail
	 * beats a refusal. */
	if ((first == TS_EJECTED || first == TS_WARMING) && !*capped &&
	    take_backend(ctx, backend_id, TS_ANY_STATE) == TS_TAKEN)
		return backend_id;
	return -1;
}

SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx)
{
	struct ts_frontend_ports *ports;
	struct ts_service_stats *stats = NULL;
	struct ts_service *service;
	struct ts_flow_key key = {};
	struct ts_flow_memory memory = {};
	__u32 zero = 0, port, chosen, table_id;
	struct ts_frontend *fe;
	struct ts_table *table;
	struct flow flow;
	int remember, assigned, capped = 0;

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
	table_id = live_table_id(fe->service_id, ctx->family);
	table = bpf_map_lookup_elem(&tables, &table_id);
	if (!table)
		goto refuse;
	/* Only connect-time steering serves this service's backends: a connection that reaches
	 * the frontend itself is not steered (forwarding to them is not done here). */
	if (!(table->flags & TS_TABLE_LOCAL) && table->backend_count > 0)
		return SK_PASS;
	/* A table that draws anew for each lookup remembers every flow: the ACK of a SYN cookie
	 * finds its backend again, and sock_ops finds the first choice. So does one with a capped
	 * backend (the ACK must not reserve a second place), and one with warmup (whose draw is
	 * random for a warming backend). */
	remember = table->balance != TS_BALANCE_HASH || (table->flags & (TS_TABLE_CAPPED | TS_TABLE_WARMUP)) ||
		   (service->remember_until_ns && bpf_ktime_get_ns() < service->remember_until_ns);
	if (remember) {
		flow_key(ctx->family, &flow, &key);
		if (assign_remembered(ctx, &key) == 0)
			return SK_PASS;
	}
	assigned = assign_chosen(ctx, table, table_id, fe->service_id, &flow, &chosen, &capped);
	if (capped)
		stats = bpf_map_lookup_elem(&service_stats, &fe->service_id);
	if (assigned >= 0) {
		if (remember) {
			memory.choice = TS_FLOW_CHOICE((__u32)assigned, chosen);
			memory.until_ns = bpf_ktime_get_ns() + TS_REMEMBER_AFTER_NS;
			bpf_map_update_elem(&recent_flows, &key, &memory, BPF_ANY);
		}
		if (capped && stats)
			stats->spills++;
		return SK_PASS;
	}
	/* Refused with a reset: every backend that could take it is at its cap. */
	if (capped) {
		if (stats) {
			stats->lookups++;
			stats->overflows++;
		}
		return SK_DROP;
	}

refuse:
	stats = bpf_map_lookup_elem(&service_stats, &fe->service_id);
	if (stats) {
		stats->lookups++;
		stats->no_backend++;
	}
	return SK_DROP;
}

#endif /* TCPSHIFT_SK_LOOKUP_BPF_H */
