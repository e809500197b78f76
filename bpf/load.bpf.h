/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The load of each backend: its established connections, and the handshakes in flight that hold
 * a reservation on a capped backend (max_connections, Istio's connectionPool.tcp.maxConnections).
 * A draw reserves before it hands the connection over; establishment gives the reservation back
 * and counts the connection active; a reservation that nothing gives back (a failed handshake)
 * lapses after TS_RESERVATION_NS. So a burst of parallel handshakes cannot overshoot the cap.
 */
#ifndef TCPSHIFT_LOAD_BPF_H
#define TCPSHIFT_LOAD_BPF_H

#include "bpf/maps.bpf.h"

/* The cap of a backend; 0: none. */
static __always_inline __u32 backend_cap(__u32 backend_id)
{
	struct ts_backend_addr *a = bpf_map_lookup_elem(&backend_addrs, &backend_id);

	return a ? a->max_connections : 0;
}

/* Reserves a handshake on `backend_id`: 1 when the backend has no cap or room under it, 0 when
 * it is at its cap (established plus reserved) or every reservation slot is taken. A slot is
 * claimed first and the live ones counted after, so of two draws racing for the last place the
 * later one sees both and gives its slot back: the cap is never exceeded. A global function,
 * so the verifier checks its loops once. */
__noinline int reserve_connection(__u32 backend_id)
{
	struct ts_backend_load *load;
	__u64 now, until;
	__u32 cap, i, live = 0;
	int claimed = -1;

	cap = backend_cap(backend_id);
	if (!cap)
		return 1;
	load = bpf_map_lookup_elem(&backend_load, &backend_id);
	if (!load)
		return 1;
	now = bpf_ktime_get_ns();
	for (i = 0; i < TS_MAX_PENDING; i++) {
		until = load->pending_until_ns[i];
		if (until > now)
			continue;
		if (__sync_val_compare_and_swap(&load->pending_until_ns[i], until, now + TS_RESERVATION_NS) == until) {
			claimed = i;
			break;
		}
	}
	if (claimed < 0)
		return 0;
	for (i = 0; i < TS_MAX_PENDING; i++)
		live += load->pending_until_ns[i] > now;
	if (load->active + live > cap) {
		load->pending_until_ns[claimed & (TS_MAX_PENDING - 1)] = 0;
		return 0;
	}
	return 1;
}

/* Gives back one live reservation of `backend_id`: its handshake ended. Reservations are
 * alike, so any live one will do. */
__noinline int release_reservation(__u32 backend_id)
{
	struct ts_backend_load *load;
	__u64 now, until;
	__u32 i;

	load = bpf_map_lookup_elem(&backend_load, &backend_id);
	if (!load)
		return 0;
	now = bpf_ktime_get_ns();
	for (i = 0; i < TS_MAX_PENDING; i++) {
		until = load->pending_until_ns[i];
		if (until > now && __sync_val_compare_and_swap(&load->pending_until_ns[i], until, 0) == until)
			return 1;
	}
	return 0;
}

/* An established connection of `backend_id`; `reserved` says its draw holds a reservation. */
static __always_inline void count_active(__u32 backend_id, int reserved)
{
	struct ts_backend_load *load = bpf_map_lookup_elem(&backend_load, &backend_id);

	if (!load)
		return;
	__sync_fetch_and_add(&load->active, 1);
	if (reserved)
		release_reservation(backend_id);
}

/* A counted connection of `backend_id` closed. */
static __always_inline void count_inactive(__u32 backend_id)
{
	struct ts_backend_load *load = bpf_map_lookup_elem(&backend_load, &backend_id);

	if (load && load->active > 0)
		__sync_fetch_and_sub(&load->active, 1);
}

#endif /* TCPSHIFT_LOAD_BPF_H */
