/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Counting a connection's close and payload bytes, for both sides sock_ops sees: a backend's
 * accepted connections and a connect-time client's.
 */
#ifndef TCPSHIFT_COUNT_BPF_H
#define TCPSHIFT_COUNT_BPF_H

#include <linux/bpf.h>

#include "bpf/abi.h"

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

#endif /* TCPSHIFT_COUNT_BPF_H */
