/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seeded flow hash, shared by the sk_lookup program and the C++ side so
 * that tests can predict which slot a connection lands in.
 *
 * Each 32-bit word of the flow is folded into a 64-bit state with the
 * murmur3 finalizer. The seed is random per attach: without it, a client
 * could pick source ports that all land on one backend.
 */
#ifndef TCPSHIFT_FLOW_HASH_H
#define TCPSHIFT_FLOW_HASH_H

#include <linux/types.h>

static inline __u64 ts_mix64(__u64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static inline __u64 ts_fold(__u64 state, __u32 word)
{
	return ts_mix64(state ^ word);
}

/* Addresses in network byte order, IPv4 in addr[0] with addr[1..3] zero. */
static inline __u32 ts_source_hash(const __u32 saddr[4], __u64 seed)
{
	__u64 h = ts_mix64(seed);

	h = ts_fold(h, saddr[0]);
	h = ts_fold(h, saddr[1]);
	h = ts_fold(h, saddr[2]);
	h = ts_fold(h, saddr[3]);
	return (__u32)(h >> 32);
}

/* Ports in host byte order. */
static inline __u32 ts_flow_hash(const __u32 saddr[4], __u16 sport, const __u32 daddr[4],
				 __u16 dport, __u64 seed)
{
	__u64 h = ts_mix64(seed);

	h = ts_fold(h, saddr[0]);
	h = ts_fold(h, saddr[1]);
	h = ts_fold(h, saddr[2]);
	h = ts_fold(h, saddr[3]);
	h = ts_fold(h, daddr[0]);
	h = ts_fold(h, daddr[1]);
	h = ts_fold(h, daddr[2]);
	h = ts_fold(h, daddr[3]);
	h = ts_fold(h, ((__u32)sport << 16) | dport);
	return (__u32)(h >> 32);
}

/* A socket or network namespace cookie: connect-time steering hashes these, since a client's
 * source port is not chosen yet when connect() is called. */
static inline __u32 ts_cookie_hash(__u64 cookie, __u64 seed)
{
	__u64 h = ts_mix64(seed);

	h = ts_fold(h, (__u32)cookie);
	h = ts_fold(h, (__u32)(cookie >> 32));
	return (__u32)(h >> 32);
}

/* The hash of the attempt-th fallback draw for a flow whose first hash is `hash`. */
static inline __u32 ts_rehash(__u32 hash, __u32 attempt)
{
	return (__u32)(ts_mix64(((__u64)attempt << 32) | hash) >> 32);
}

#endif /* TCPSHIFT_FLOW_HASH_H */
