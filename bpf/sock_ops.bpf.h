/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The sock_ops program "register_and_count". A socket that starts listening where a configured
 * backend lives is registered: put into the "sockets" SOCKHASH, so a backend that starts or
 * restarts is picked up without the agent, and its socket storage names the backend. Every
 * connection the listener accepts inherits that storage, and is counted: opened at
 * establishment, closed with its bytes when the socket reaches TCP_CLOSE. It runs for the
 * whole cgroup, so every namespace's sockets pass by: only this namespace's are looked at.
 */
#ifndef TCPSHIFT_SOCK_OPS_BPF_H
#define TCPSHIFT_SOCK_OPS_BPF_H

#include <bpf/bpf_endian.h>

#include "bpf/client.bpf.h"
#include "bpf/count.bpf.h"
#include "bpf/load.bpf.h"
#include "bpf/pick.bpf.h"

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

/* The backend's first listener started: it is ready from now, and a table with warmup ramps
 * it up from here. (A later member of a SO_REUSEPORT group that takes slot 0 after the first
 * closed starts the ramp again.) */
static __always_inline void mark_ready(__u32 backend_id)
{
	struct ts_backend_health *h = bpf_map_lookup_elem(&backend_health, &backend_id);

	if (h)
		h->ready_ns = bpf_ktime_get_ns();
}

/* Puts a listener into the first free member slot of a backend; a group larger than the
 * slots replaces one member by its cookie, and any registered member serves the group. */
static __always_inline void join_backend(struct bpf_sock_ops *skops, __u32 backend_id)
{
	__u32 member, key;

	for (member = 0; member < TS_GROUP_SLOTS; member++) {
		key = TS_SOCKET_KEY(backend_id, member);
		if (bpf_sock_hash_update(skops, &sockets, &key, BPF_NOEXIST) == 0) {
			if (member == 0)
				mark_ready(backend_id);
			return;
		}
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
		storage->established_ns = 0;
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

/* Whether sk_lookup may hold a live memory of a hashing table's flow: it remembers a warming
 * table's flows, and every flow around a table change (until remember_until_ns), each for
 * TS_REMEMBER_AFTER_NS. Past that, no memory of the flow can be live, and there is nothing to
 * forget. */
static __always_inline int may_remember(const struct ts_service *service, const struct ts_table *table)
{
	__u64 until = service->remember_until_ns, now;

	if (table->flags & TS_TABLE_WARMUP)
		return 1;
	if (!until)
		return 0;
	now = bpf_ktime_get_ns();
	return now < until || now - until < TS_REMEMBER_AFTER_NS;
}

/* The live table's first choice for an established flow: computed again for a hashing
 * table, remembered by sk_lookup for one that draws anew; TS_NO_BACKEND when unknown. Any
 * memory of the flow is forgotten here: established, it needs none, and a later connection
 * of the same 4-tuple (a client that reuses its ports within TS_REMEMBER_AFTER_NS of a flip)
 * must be drawn by the weights of now, not given the backend of before the flip. */
static __always_inline __u32 first_choice(const struct ts_service *service, const struct ts_table *table, __u32 family,
					 const struct flow *f)
{
	struct ts_flow_key key = {};
	struct ts_flow_memory *m;
	__u32 chosen;

	if (table->balance == TS_BALANCE_HASH && !(table->flags & TS_TABLE_CAPPED)) {
		if (may_remember(service, table)) {
			flow_key(family, f, &key);
			bpf_map_delete_elem(&recent_flows, &key);
		}
		return hashed_backend(table, f);
	}
	flow_key(family, f, &key);
	m = bpf_map_lookup_elem(&recent_flows, &key);
	if (!m)
		return TS_NO_BACKEND;
	chosen = TS_FLOW_CHOSEN(m->choice);
	bpf_map_delete_elem(&recent_flows, &key);
	return chosen;
}

/* Counts a connection that came through a frontend: a lookup of its service, and a fallback
 * when it landed elsewhere than the live table's choice for its flow. */
static __always_inline void count_steered(const struct ts_frontend *fe, const struct ts_service *service,
					  const struct ts_table *table, __u32 family, const struct flow *f,
					  __u32 backend_id)
{
	struct ts_service_stats *stats;
	__u32 service_id = fe->service_id, chosen;

	stats = bpf_map_lookup_elem(&service_stats, &service_id);
	if (!stats)
		return;
	stats->lookups++;
	if (!service || !table)
		return;
	chosen = first_choice(service, table, family, f);
	/* A draw of a connect-time backend is no fallback: no listener here is meant to take it. */
	if (chosen != TS_NO_BACKEND && chosen != backend_id && !backend_is_remote(chosen))
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
	fe = find_frontend(family, &flow);
	/* A connection through a frontend to a capped backend was drawn with a reservation. */
	count_active(backend_id, fe && backend_cap(backend_id));
	conn->established_ns = bpf_ktime_get_ns();
	bs = bpf_map_lookup_elem(&backend_stats, &backend_id);
	if (!bs)
		return;
	bs->opened++;
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
		struct ts_service *service = bpf_map_lookup_elem(&services, &fe->service_id);
		struct ts_table *table = service ? live_table(fe->service_id, family) : NULL;

		count_steered(fe, service, table, family, &flow, backend_id);
		set_keepalive(skops, table);
	}
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* Counts a closed connection and its payload bytes for its backend, and for the route it
 * came by when it came through a frontend. */
static __always_inline void count_closed(const struct ts_connection *conn, __u32 backend_id, __u64 sent,
					 __u64 received)
{
	add_closed(bpf_map_lookup_elem(&backend_stats, &backend_id), sent, received);
	if (conn->flags & TS_CONN_STEERED) {
		struct ts_route_key route = { .service_id = conn->service_id, .backend_id = backend_id };

		add_closed(bpf_map_lookup_elem(&route_stats, &route), sent, received);
	}
}

/* Judges a steered connection for its backend's health, once. One that got a byte from the
 * backend is a success. Within TS_EARLY_CLOSE_NS of establishment, having written nothing, the
 * backend closing it (ESTABLISHED -> FIN_WAIT1) or resetting it (-> CLOSE, also after the
 * client's FIN: CLOSE_WAIT -> CLOSE) is a failure. An orderly close after the client's FIN
 * (CLOSE_WAIT -> LAST_ACK) says nothing of the backend: an upload ends so. A client's own reset
 * looks like the backend's here: it is rare on a connection the client has just opened. */
static __always_inline void judge_close(struct bpf_sock_ops *skops, struct ts_connection *conn, __u32 backend_id,
					__u32 old_state, __u32 new_state)
{
	int backend_ended;

	if (!(conn->flags & TS_CONN_STEERED) || (conn->flags & TS_CONN_JUDGED))
		return;
	if (skops->data_segs_out > 0) {
		conn->flags |= TS_CONN_JUDGED;
		note_success(backend_id);
		return;
	}
	if (old_state == BPF_TCP_CLOSE_WAIT && new_state == BPF_TCP_LAST_ACK) {
		conn->flags |= TS_CONN_JUDGED;
		return;
	}
	backend_ended = (old_state == BPF_TCP_ESTABLISHED &&
			 (new_state == BPF_TCP_FIN_WAIT1 || new_state == BPF_TCP_CLOSE)) ||
			(old_state == BPF_TCP_CLOSE_WAIT && new_state == BPF_TCP_CLOSE);
	if (!backend_ended)
		return;
	conn->flags |= TS_CONN_JUDGED;
	if (bpf_ktime_get_ns() - conn->established_ns < TS_EARLY_CLOSE_NS)
		note_failure(backend_id, conn->service_id);
}

/* Follows an accounted connection to TCP_CLOSE, where its payload bytes are counted. */
static __always_inline void on_state_change(struct bpf_sock_ops *skops)
{
	__u32 old_state = skops->args[0], new_state = skops->args[1];
	struct ts_connection *conn;
	__u64 sent, received;
	struct bpf_sock *sk;
	__u32 backend_id;

	sk = skops->sk;
	if (!sk)
		return;
	conn = bpf_sk_storage_get(&connections, sk, 0, 0);
	if (!conn || (conn->flags & TS_CONN_LISTENER))
		return;
	note_fins(&conn->flags, old_state, new_state);
	backend_id = conn->backend_ids[0];
	/* The id went to another address while the connection was open: its close, bytes and
	 * health are not the new address's. */
	if (conn->tags[0] != backend_tag(backend_id)) {
		if (new_state == BPF_TCP_CLOSE)
			bpf_sk_storage_delete(&connections, sk);
		return;
	}
	judge_close(skops, conn, backend_id, old_state, new_state);
	if (new_state != BPF_TCP_CLOSE)
		return;
	payload_bytes(skops, conn->flags, &sent, &received);
	count_closed(conn, backend_id, sent, received);
	/* The service's connections only, as the route counters: what its canary is judged on.
	 * The backend wrote when it sent data segments, acknowledged or not: a reset right after
	 * a write comes before the client's ACK. */
	if (conn->flags & TS_CONN_STEERED)
		record_sli(skops, backend_id, conn->established_ns, old_state, skops->data_segs_out, 1);
	count_inactive(backend_id);
	bpf_sk_storage_delete(&connections, sk);
}

/* Connect-time clients run in any namespace of the cgroup: their sockets carry "clients"
 * storage. Backends' listeners and connections are this namespace's only. */
SEC("sockops")
int register_and_count(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		on_client_connect(skops);
		return 1;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_client_established(skops);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		if (on_client_state_change(skops))
			return 1;
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		break;
	default: /* timeouts, windows, ECN, RTT: nothing of ours */
		return 1;
	}
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

#endif /* TCPSHIFT_SOCK_OPS_BPF_H */
