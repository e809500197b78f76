/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A backend's health, as the programs judge it: failed connections in a row eject it (Istio's
 * outlierDetection), under maxEjectionPercent; a good one clears the count. sock_ops judges
 * connect-time handshakes and socket backends' early closes, sk_lookup a full listen queue.
 */
#ifndef TCPSHIFT_HEALTH_BPF_H
#define TCPSHIFT_HEALTH_BPF_H

#include "bpf/pick.bpf.h"

/* Whether one more of the backends of `service_id` in its `family` table may be ejected under
 * max_ejection_percent: the first always may, as in Envoy. */
static __always_inline int ejection_allowed(__u32 service_id, __u32 family, __u32 max_ejection_percent)
{
	struct ts_service *service = bpf_map_lookup_elem(&services, &service_id);
	struct out_count c = { .now = bpf_ktime_get_ns(), .ejected_only = 1 };
	struct ts_table *table;
	__u32 count;

	if (max_ejection_percent >= 100 || !service)
		return 1;
	c.table_id = live_table_id(service_id, family);
	table = bpf_map_lookup_elem(&tables, &c.table_id);
	if (!table)
		return 1;
	count = table->backend_count;
	if (count == 0 || count > TS_MAX_SERVICE_BACKENDS)
		return 1;
	bpf_loop(count, count_out, &c, 0);
	return c.out == 0 || (c.out + 1) * 100 <= max_ejection_percent * count;
}

/* A failed connection to a backend: a handshake, an early close, a full listen queue. The one
 * that makes the failures reach eject_after ejects it, for eject_ns times the number of
 * ejections in a row (at most TS_MAX_EJECTION_FACTOR).
 * A failure while the backend is ejected is a connection that was under way when it was
 * ejected: it neither lengthens the ejection nor counts toward the next, as in Envoy, so a
 * backend that comes back within the base ejection time takes connections again then. */
static __always_inline void note_failure(__u32 backend_id, __u32 service_id)
{
	struct ts_backend_health *h = bpf_map_lookup_elem(&backend_health, &backend_id);
	struct ts_backend_addr *a = bpf_map_lookup_elem(&backend_addrs, &backend_id);
	__u64 now = bpf_ktime_get_ns();
	__u64 until;
	__u32 factor;

	if (!h || !a)
		return;
	__sync_fetch_and_add(&h->failed, 1);
	until = h->ejected_until_ns;
	if (now < until)
		return;
	if (__sync_fetch_and_add(&h->failures, 1) + 1 < a->eject_after || a->eject_after == 0)
		return;
	/* Past maxEjectionPercent it stays in, its failures counting on: the next one asks again. */
	if (!ejection_allowed(service_id, a->family, a->max_ejection_percent))
		return;
	factor = h->ejections + 1;
	if (factor > TS_MAX_EJECTION_FACTOR)
		factor = TS_MAX_EJECTION_FACTOR;
	/* Failures on two CPUs at once may both reach eject_after: the one whose swap takes
	 * ejects, once, for one factor; the other was under way when it was ejected. */
	if (__sync_val_compare_and_swap(&h->ejected_until_ns, until, now + a->eject_ns * factor) != until)
		return;
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

/* A SYN handed to a listener of the backend whose accept queue is full: the kernel drops it.
 * Counted always; a failure when the backend is judged (eject_after). */
static __always_inline void note_overflow(__u32 backend_id, __u32 service_id)
{
	struct ts_backend_health *h = bpf_map_lookup_elem(&backend_health, &backend_id);
	struct ts_backend_addr *a = bpf_map_lookup_elem(&backend_addrs, &backend_id);

	if (!h || !a)
		return;
	__sync_fetch_and_add(&h->overflows, 1);
	if (a->eject_after)
		note_failure(backend_id, service_id);
}

#endif /* TCPSHIFT_HEALTH_BPF_H */
