/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Counting a connection's close and payload bytes, for both sides sock_ops sees: a backend's
 * accepted connections and a connect-time client's.
 */
#ifndef TCPSHIFT_COUNT_BPF_H
#define TCPSHIFT_COUNT_BPF_H

#include <linux/bpf.h>

#include "bpf/abi.h"
#include "bpf/maps.bpf.h"

/* Notes the FINs a state transition shows: the kernel's byte counters count each as a byte. */
static __always_inline void note_fins(__u32 *flags, __u32 old_state, __u32 new_state)
{
	/* The peer's FIN: ESTABLISHED -> CLOSE_WAIT, FIN_WAIT1 -> CLOSING, or FIN_WAIT2 ->
	 * CLOSE through TIME_WAIT (an orphan's FIN_WAIT2 timeout looks the same; it is rare). */
	if ((old_state == BPF_TCP_ESTABLISHED && new_state == BPF_TCP_CLOSE_WAIT) ||
	    (old_state == BPF_TCP_FIN_WAIT1 && new_state == BPF_TCP_CLOSING) ||
	    (old_state == BPF_TCP_FIN_WAIT2 && new_state == BPF_TCP_CLOSE))
		*flags |= TS_CONN_FIN_IN;
	if (new_state == BPF_TCP_FIN_WAIT1 || new_state == BPF_TCP_LAST_ACK)
		*flags |= TS_CONN_FIN_OUT;
}

/* The payload bytes of a connection reaching TCP_CLOSE. The kernel's byte counters advance
 * with the sequence numbers, and a FIN takes one: `flags` says which FINs to take off. */
static __always_inline void payload_bytes(struct bpf_sock_ops *skops, __u32 flags, __u64 *sent, __u64 *received)
{
	*received = skops->bytes_received;
	if ((flags & TS_CONN_FIN_IN) && *received > 0)
		(*received)--;
	*sent = skops->bytes_acked;
	/* Our FIN counts in bytes_acked only once acknowledged: all we sent is acked. */
	if ((flags & TS_CONN_FIN_OUT) && skops->snd_una == skops->snd_nxt && *sent > 0)
		(*sent)--;
}

static __always_inline void add_closed(struct ts_backend_stats *bs, __u64 sent, __u64 received)
{
	if (!bs)
		return;
	bs->closed++;
	bs->bytes_sent += sent;
	bs->bytes_received += received;
}

/* The bucket of `value` in a histogram whose bound i is first << (shift * i). */
static __always_inline __u32 sli_bucket(__u64 value, __u64 first, __u32 shift)
{
	__u32 i;

	for (i = 0; i < TS_SLI_BUCKETS - 1; i++)
		if (value < (first << (shift * i)))
			return i;
	return TS_SLI_BUCKETS - 1;
}

/* Records a connection reaching TCP_CLOSE from `old_state` in its backend's SLIs: its lifetime
 * (when it was established at established_ns), its smoothed RTT and retransmits, and whether it
 * ended in a reset, after the backend wrote payload (`wrote`) or, with `silent_resets`, later
 * than an early close and without (a connect-time client's reset before data is a failed
 * connection in backend_health, at any age). */
static __always_inline void record_sli(struct bpf_sock_ops *skops, __u32 backend_id, __u64 established_ns,
				       __u32 old_state, __u64 wrote, int silent_resets)
{
	struct ts_backend_sli *s = bpf_map_lookup_elem(&backend_sli, &backend_id);
	__u64 us = 0, srtt_us;
	__u32 b;

	if (!s)
		return;
	if (established_ns) {
		us = (bpf_ktime_get_ns() - established_ns) / 1000;
		b = sli_bucket(us, 1000, 2);
		__sync_fetch_and_add(&s->duration_count, 1);
		__sync_fetch_and_add(&s->duration_sum_us, us);
		if (b < TS_SLI_BUCKETS)
			__sync_fetch_and_add(&s->duration_buckets[b], 1);
	}
	srtt_us = skops->srtt_us >> 3; /* the kernel keeps it times 8 */
	if (srtt_us) {
		b = sli_bucket(srtt_us, 16, 1);
		__sync_fetch_and_add(&s->rtt_count, 1);
		__sync_fetch_and_add(&s->rtt_sum_us, srtt_us);
		if (b < TS_SLI_BUCKETS)
			__sync_fetch_and_add(&s->rtt_buckets[b], 1);
	}
	if (skops->total_retrans)
		__sync_fetch_and_add(&s->retransmits, skops->total_retrans);
	if (!wrote && established_ns)
		__sync_fetch_and_add(&s->unanswered, 1);
	if (old_state != BPF_TCP_ESTABLISHED && old_state != BPF_TCP_CLOSE_WAIT && old_state != BPF_TCP_FIN_WAIT1)
		return;
	if (wrote)
		__sync_fetch_and_add(&s->reset_after_data, 1);
	else if (silent_resets && us * 1000 >= TS_EARLY_CLOSE_NS)
		__sync_fetch_and_add(&s->reset_without_data, 1);
}

#endif /* TCPSHIFT_COUNT_BPF_H */
