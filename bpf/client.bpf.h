/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The client side of connect-time steering, seen by sock_ops: a socket whose connect() was
 * rewritten carries "clients" storage. Its handshake feeds the backend's health (a success
 * clears the failures; consecutive failures eject the backend), and it is counted for the
 * backend and its route, as the backend side counts the connections a listener accepts.
 */
#ifndef TCPSHIFT_CLIENT_BPF_H
#define TCPSHIFT_CLIENT_BPF_H

#include "bpf/count.bpf.h"
#include "bpf/load.bpf.h"
#include "bpf/pick.bpf.h"
#include "bpf/socket_options.bpf.h"

static __always_inline struct ts_client *client_of(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;

	return sk ? bpf_sk_storage_get(&clients, sk, 0, 0) : NULL;
}

/* The SYN is about to go: follow the socket's states, to see the handshake end. */
static __always_inline void on_client_connect(struct bpf_sock_ops *skops)
{
	if (client_of(skops))
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* A failed handshake to a backend. The one that makes the failures reach eject_after ejects
 * it, for eject_ns times the number of ejections in a row (at most TS_MAX_EJECTION_FACTOR).
 * A failure while the backend is ejected is a connection that was under way when it was
 * ejected: it neither lengthens the ejection nor counts toward the next, as in Envoy, so a
 * backend that comes back within the base ejection time takes connections again then. */
/* What count_ejected() adds up, one backend of a table at a time. */
struct ejected_count {
	__u32 table_id;
	__u32 ejected;
	__u64 now;
};

/* A bpf_loop() step: counts backend i of the table if it is ejected. A callback is verified once,
 * whatever the count; an unrolled loop's diverging counts would not fit the verifier. */
static long count_ejected(__u32 i, void *ctx)
{
	struct ejected_count *c = ctx;
	struct ts_table *table = bpf_map_lookup_elem(&tables, &c->table_id);
	struct ts_backend_health *h;
	__u32 id;

	if (!table || i >= TS_MAX_SERVICE_BACKENDS)
		return 1;
	id = table->backends[i];
	h = bpf_map_lookup_elem(&backend_health, &id);
	if (h && c->now < h->ejected_until_ns)
		c->ejected++;
	return 0;
}

/* Whether one more of the backends of `service_id` in its `family` table may be ejected under
 * max_ejection_percent: the first always may, as in Envoy. */
static __always_inline int ejection_allowed(__u32 service_id, __u32 family, __u32 max_ejection_percent)
{
	struct ts_service *service = bpf_map_lookup_elem(&services, &service_id);
	struct ejected_count c = { .now = bpf_ktime_get_ns() };
	struct ts_table *table;
	__u32 count;

	if (max_ejection_percent >= 100 || !service)
		return 1;
	c.table_id = live_table_id(service, service_id, family);
	table = bpf_map_lookup_elem(&tables, &c.table_id);
	if (!table)
		return 1;
	count = table->backend_count;
	if (count == 0 || count > TS_MAX_SERVICE_BACKENDS)
		return 1;
	bpf_loop(count, count_ejected, &c, 0);
	return c.ejected == 0 || (c.ejected + 1) * 100 <= max_ejection_percent * count;
}

static __always_inline void note_failure(__u32 backend_id, __u32 service_id)
{
	struct ts_backend_health *h = bpf_map_lookup_elem(&backend_health, &backend_id);
	struct ts_backend_addr *a = bpf_map_lookup_elem(&backend_addrs, &backend_id);
	__u64 now = bpf_ktime_get_ns();
	__u32 factor;

	if (!h || !a)
		return;
	__sync_fetch_and_add(&h->failed, 1);
	if (now < h->ejected_until_ns)
		return;
	__sync_fetch_and_add(&h->failures, 1);
	if (a->eject_after == 0 || h->failures < a->eject_after)
		return;
	/* Past maxEjectionPercent it stays in, its failures counting on: the next one asks again. */
	if (!ejection_allowed(service_id, a->family, a->max_ejection_percent))
		return;
	factor = h->ejections + 1;
	if (factor > TS_MAX_EJECTION_FACTOR)
		factor = TS_MAX_EJECTION_FACTOR;
	h->ejected_until_ns = now + a->eject_ns * factor;
	h->ejections = factor;
	h->failures = 0;
	__sync_fetch_and_add(&h->ejected, 1);
}

/* A good connection to a backend: its failures and ejections in a row start over. */
static __always_inline void note_success(__u32 backend_id)
{
	struct ts_backend_health *h = bpf_map_lookup_elem(&backend_health, &backend_id);

	if (h && (h->failures || h->ejections)) {
		h->failures = 0;
		h->ejections = 0;
	}
}

static __always_inline void on_client_established(struct bpf_sock_ops *skops)
{
	struct ts_client *c = client_of(skops);
	struct ts_backend_stats *bs;
	struct ts_route_key route;
	__u32 backend_id;

	if (!c)
		return;
	c->flags |= TS_CLIENT_ESTABLISHED;
	set_keepalive(skops, live_table(c->service_id, c->family));
	backend_id = c->backend_id;
	count_active(backend_id, backend_cap(backend_id) > 0);
	note_success(backend_id);
	/* The id went to another address since connect(): not the new address's connection. */
	if (c->tag != backend_tag(backend_id))
		return;
	bs = bpf_map_lookup_elem(&backend_stats, &backend_id);
	if (bs) {
		bs->opened++;
		bs->steered++;
	}
	route.service_id = c->service_id;
	route.backend_id = backend_id;
	bs = bpf_map_lookup_elem(&route_stats, &route);
	if (bs) {
		bs->opened++;
		bs->steered++;
	}
}

/* Counts a client's close: its received bytes are the backend's response (bytes_sent), what
 * it sent is the request (bytes_received), as the backend side counts them. */
static __always_inline void count_client_closed(struct bpf_sock_ops *skops, const struct ts_client *c)
{
	struct ts_route_key route = { .service_id = c->service_id, .backend_id = c->backend_id };
	__u32 backend_id = c->backend_id;
	__u64 sent, received;

	if (c->tag != backend_tag(backend_id))
		return;
	payload_bytes(skops, c->flags, &sent, &received);
	/* A client's bytes_acked took its SYN too, when the SYN-ACK acknowledged it. */
	if (sent > 0)
		sent--;
	add_closed(bpf_map_lookup_elem(&backend_stats, &backend_id), received, sent);
	add_closed(bpf_map_lookup_elem(&route_stats, &route), received, sent);
}

/* Returns 1 when the socket is a connect-time client's. A handshake that ends in TCP_CLOSE,
 * or an established connection reset before a byte came back, is a failure of its backend. */
static __always_inline int on_client_state_change(struct bpf_sock_ops *skops)
{
	__u32 old_state = skops->args[0], new_state = skops->args[1];
	struct ts_client *c = client_of(skops);

	if (!c)
		return 0;
	if (c->flags & TS_CLIENT_DONE)
		return 1;
	note_fins(&c->flags, old_state, new_state);
	if (new_state != BPF_TCP_CLOSE)
		return 1;
	c->flags |= TS_CLIENT_DONE;
	if (!(c->flags & TS_CLIENT_ESTABLISHED)) {
		if (backend_cap(c->backend_id))
			release_reservation(c->backend_id); /* the handshake failed */
		note_failure(c->backend_id, c->service_id);
		return 1;
	}
	count_inactive(c->backend_id);
	if (old_state == BPF_TCP_ESTABLISHED && skops->bytes_received == 0)
		note_failure(c->backend_id, c->service_id);
	count_client_closed(skops, c);
	return 1;
}

#endif /* TCPSHIFT_CLIENT_BPF_H */
