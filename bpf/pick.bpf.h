/* SPDX-License-Identifier: GPL-2.0 */
/*
 * How a flow finds its frontend and its backend, shared by both programs: sk_lookup steers a
 * new connection by pick_backend(), and sock_ops counts an established connection as a
 * fallback when it landed elsewhere than pick_backend() says. The count is right only because
 * both read the live table through this one function.
 */
#ifndef TCPSHIFT_PICK_BPF_H
#define TCPSHIFT_PICK_BPF_H

#include "bpf/flow_hash.h"
#include "bpf/maps.bpf.h"

#define AF_INET 2
#define AF_INET6 10

/* Pins a value in a register so clang cannot rewrite how it was obtained.
 * Without it clang turns "load a or load b, by family" into "load from (a or
 * b)", an offset context pointer that the verifier rejects, and drops bound
 * checks that it can prove but the verifier cannot. */
#define pin_value(v) asm volatile("" : "+r"(v))

/* The addresses and ports of a new connection, read from the context once. */
struct flow {
	__u32 saddr[4]; /* network byte order; IPv4 in [0] */
	__u32 daddr[4]; /* network byte order; IPv4 in [0] */
	__u16 sport;    /* host byte order */
	__u16 dport;    /* host byte order */
};

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

/* The id of a service's weight table for clients of `family`. */
static __always_inline __u32 live_table_id(__u32 service_id, __u32 family)
{
	return TS_TABLE_ID(service_id, TS_FAMILY_INDEX(family));
}

/* The weight table of a service for clients of `family`; NULL when it has none. */
static __always_inline struct ts_table *live_table(__u32 service_id, __u32 family)
{
	__u32 table_id = live_table_id(service_id, family);

	return bpf_map_lookup_elem(&tables, &table_id);
}

static __always_inline __u32 flow_hash(const struct flow *f, __u32 affinity)
{
	if (affinity == TS_AFFINITY_SOURCE_IP)
		return ts_source_hash(f->saddr, hash_seed);
	return ts_flow_hash(f->saddr, f->sport, f->daddr, f->dport, hash_seed);
}

/* The backend in the slot `hash` selects; TS_NO_BACKEND when the table has none. */
static __always_inline __u32 slot_backend(const struct ts_table *table, __u32 hash)
{
	__u32 count = table->slot_count, slot, pos;

	if (count == 0 || count > TS_TABLE_SLOTS)
		return TS_NO_BACKEND;
	slot = hash % count;
	pin_value(slot); /* keep the bound check that clang knows is redundant */
	if (slot >= TS_TABLE_SLOTS)
		return TS_NO_BACKEND;
	pos = table->slots[slot]; /* below 256 = TS_MAX_SERVICE_BACKENDS, as a byte */
	if (pos >= table->backend_count)
		return TS_NO_BACKEND;
	return table->backends[pos];
}

/* What a new connection draws its slot with: `flow_hash` for a hashing table, a random number
 * for RANDOM and LEAST_CONN, the service's next turn for ROUND_ROBIN. */
static __always_inline __u32 draw(const struct ts_table *table, __u32 service_id, __u32 flow_hash)
{
	__u32 *turn;

	switch (table->balance) {
	case TS_BALANCE_RANDOM:
	case TS_BALANCE_LEAST_CONN:
		return bpf_get_prandom_u32();
	case TS_BALANCE_ROUND_ROBIN:
		turn = bpf_map_lookup_elem(&turns, &service_id);
		return turn ? __sync_fetch_and_add(turn, 1) : flow_hash;
	default:
		return flow_hash;
	}
}

/* Step i of the walk over a table's weighted backends that starts at `hash`, when draws
 * found no live backend; TS_NO_BACKEND past its end. */
static __always_inline __u32 walk_backend(const struct ts_table *table, __u32 hash, __u32 i)
{
	__u32 idx, count = table->backend_count;

	if (i >= count || count > TS_MAX_SERVICE_BACKENDS)
		return TS_NO_BACKEND;
	idx = (hash + i) % count;
	pin_value(idx);
	if (idx >= TS_MAX_SERVICE_BACKENDS)
		return TS_NO_BACKEND;
	return table->backends[idx];
}

/* The fallback's candidate at step i (from 0) when the first choice cannot take a connection:
 * TS_FALLBACK_REHASHES draws again from the table (so its share goes to the others by weight),
 * then a walk over the table's weighted backends, for when most of the weight cannot take it.
 * TS_NO_BACKEND for a step that names nobody. */
#define TS_FALLBACK_STEPS (TS_FALLBACK_REHASHES + TS_MAX_SERVICE_BACKENDS)

/* What a fallback returns: the backend that takes the connection in the low 16 bits
 * (TS_NO_BACKEND for none), with TS_FALLBACK_CAPPED set when a backend was passed over for its
 * cap. */
#define TS_FALLBACK_CAPPED (1 << 16)
#define TS_FALLBACK_BACKEND(r) ((__u32)(r) & 0xffff)

static __always_inline __u32 fallback_candidate(const struct ts_table *table, __u32 hash, __u32 i)
{
	if (i < TS_FALLBACK_REHASHES)
		return slot_backend(table, ts_rehash(hash, i + 1));
	return walk_backend(table, hash, i - TS_FALLBACK_REHASHES);
}

/* The backend a hashing table chooses for a flow; TS_NO_BACKEND when the table has none. */
static __always_inline __u32 hashed_backend(const struct ts_table *table, const struct flow *f)
{
	return slot_backend(table, flow_hash(f, table->affinity));
}

/* The backend the table chooses for a new flow of `service_id`; TS_NO_BACKEND when the table
 * has none. Sets *hash to what the slot was drawn with, from which sk_lookup's fallback draws
 * again. A RANDOM or ROUND_ROBIN table draws anew at each call. */
static __always_inline __u32 pick_backend(const struct ts_table *table, __u32 service_id, const struct flow *f,
					  __u32 *hash)
{
	*hash = draw(table, service_id, flow_hash(f, table->affinity));
	return slot_backend(table, *hash);
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

static __always_inline __u32 backend_tag(__u32 backend_id)
{
	struct ts_backend_tag *t = bpf_map_lookup_elem(&backend_tags, &backend_id);

	return t ? t->tag : 0;
}

/* Whether a backend may take a new connection: neither ejected after failed connections nor
 * down by the agent's probe. */
static __always_inline int backend_available(__u32 backend_id, __u64 now)
{
	struct ts_backend_health *h = bpf_map_lookup_elem(&backend_health, &backend_id);

	if (!h)
		return 1;
	return !h->probe_down && now >= h->ejected_until_ns;
}

/* What count_out() adds up, one backend of a table at a time. */
struct out_count {
	__u32 table_id;
	__u32 out;
	__u64 now;
	__u32 ejected_only; /* count the ejected only, not those the probe found down */
};

/* A bpf_loop() step: counts backend i of the table if it is ejected or down. A callback is
 * verified once, whatever the count; an unrolled loop's diverging counts would not fit the
 * verifier. */
static long count_out(__u32 i, void *ctx)
{
	struct out_count *c = ctx;
	struct ts_table *table = bpf_map_lookup_elem(&tables, &c->table_id);
	struct ts_backend_health *h;
	__u32 id;

	if (!table || i >= TS_MAX_SERVICE_BACKENDS)
		return 1;
	id = table->backends[i];
	h = bpf_map_lookup_elem(&backend_health, &id);
	if (h && (c->now < h->ejected_until_ns || (!c->ejected_only && h->probe_down)))
		c->out++;
	return 0;
}

/* Whether the table is in panic (Istio's minHealthPercent): fewer of its backends are available
 * than the share it names, so an ejected or down backend takes its weight like the others. A
 * global function: its loop is verified once. */
__noinline int panicking(__u32 table_id, __u64 now)
{
	struct ts_table *table = bpf_map_lookup_elem(&tables, &table_id);
	struct out_count c = { .table_id = table_id, .now = now };
	__u32 count, percent;

	if (!table)
		return 0;
	percent = table->min_health_percent;
	count = table->backend_count;
	if (percent == 0 || count == 0 || count > TS_MAX_SERVICE_BACKENDS)
		return 0;
	bpf_loop(count, count_out, &c, 0);
	return (count - c.out) * 100 < percent * count;
}

/* Whether warmup turns a backend away from this draw: one that became ready less than the
 * table's warmup_ns ago takes a connection drawn for it only with the probability of its step
 * of the ramp, and the connection is drawn again otherwise. */
static __always_inline int warming_declines(__u32 table_id, __u32 backend_id, __u64 now)
{
	struct ts_table *table = bpf_map_lookup_elem(&tables, &table_id);
	struct ts_backend_health *h;
	__u64 span, age;
	__u32 step;

	if (!table || !(table->flags & TS_TABLE_WARMUP))
		return 0;
	span = table->warmup_ns;
	h = bpf_map_lookup_elem(&backend_health, &backend_id);
	if (!h || span == 0 || h->ready_ns == 0 || now < h->ready_ns)
		return 0;
	age = now - h->ready_ns;
	if (age >= span)
		return 0;
	step = age * TS_WARMUP_STEPS / span;
	pin_value(step);
	if (step >= TS_WARMUP_STEPS)
		return 0;
	return (bpf_get_prandom_u32() & 0xffff) >= table->warmup_curve[step];
}

/* Whether connect-time steering, not a listener here, serves the backend. */
static __always_inline int backend_is_remote(__u32 backend_id)
{
	struct ts_backend_addr *a = bpf_map_lookup_elem(&backend_addrs, &backend_id);

	return a && (a->flags & TS_BACKEND_REMOTE);
}

#endif /* TCPSHIFT_PICK_BPF_H */
