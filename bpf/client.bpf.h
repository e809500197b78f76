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
#include "bpf/health.bpf.h"
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

static __always_inline void on_client_established(struct bpf_sock_ops *skops)
{
	struct ts_client *c = client_of(skops);
	struct ts_backend_stats *bs;
	struct ts_route_key route;
	__u32 backend_id;

	if (!c)
		return;
	c->flags |= TS_CLIENT_ESTABLISHED;
	c->established_ns = bpf_ktime_get_ns();
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
static __always_inline void count_client_closed(struct bpf_sock_ops *skops, const struct ts_client *c,
					       __u32 old_state)
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
	record_sli(skops, backend_id, c->established_ns, old_state, received /* the backend's */, 0);
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
	count_client_closed(skops, c, old_state);
	return 1;
}

#endif /* TCPSHIFT_CLIENT_BPF_H */
