/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Socket options a service's policy sets on its connections from sock_ops: both on a
 * backend's accepted connection and on a connect-time client's.
 */
#ifndef TCPSHIFT_SOCKET_OPTIONS_BPF_H
#define TCPSHIFT_SOCKET_OPTIONS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpf/abi.h"

/* From the socket and TCP headers, which do not build for the BPF target. */
#define SOL_SOCKET 1
#define SO_KEEPALIVE 9
#define SOL_TCP 6
#define TCP_KEEPIDLE 4
#define TCP_KEEPINTVL 5
#define TCP_KEEPCNT 6

/* The service's TCP keepalive (Istio's connectionPool.tcp.tcpKeepalive) on a connection;
 * a setting of 0 leaves the kernel's. */
static __always_inline void set_keepalive(struct bpf_sock_ops *skops, const struct ts_table *table)
{
	int on = 1, value;

	if (!table || !(table->flags & TS_TABLE_KEEPALIVE))
		return;
	bpf_setsockopt(skops, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	value = table->keepalive_time;
	if (value)
		bpf_setsockopt(skops, SOL_TCP, TCP_KEEPIDLE, &value, sizeof(value));
	value = table->keepalive_interval;
	if (value)
		bpf_setsockopt(skops, SOL_TCP, TCP_KEEPINTVL, &value, sizeof(value));
	value = table->keepalive_probes;
	if (value)
		bpf_setsockopt(skops, SOL_TCP, TCP_KEEPCNT, &value, sizeof(value));
}

#endif /* TCPSHIFT_SOCKET_OPTIONS_BPF_H */
