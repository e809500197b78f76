// SPDX-License-Identifier: GPL-2.0
/*
 * "destroy_marked": a TCP socket iterator that aborts the sockets whose cookies userspace put
 * in "marked", with the kfunc bpf_sock_destroy (Linux 6.5+). An object of its own, apart from
 * steer.bpf.c, so that the data plane loads on kernels without the kfunc; userspace falls back
 * to netlink SOCK_DESTROY where this one does not load.
 *
 * The two kernel types are declared here with only the fields used, relocated by CO-RE
 * against the running kernel's BTF, so the build needs no vmlinux.h.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct sock_common {
	unsigned short skc_family;
} __attribute__((preserve_access_index));

struct bpf_iter_meta {
	void *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} __attribute__((preserve_access_index));

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

/* Socket cookie -> 1: the sockets to abort; userspace fills it before each run. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} marked SEC(".maps");

/* Sockets destroyed by the runs so far. */
__u64 destroyed = 0;

SEC("iter/tcp")
int destroy_marked(struct bpf_iter__tcp *ctx)
{
	struct sock_common *sk = ctx->sk_common;
	__u64 cookie;

	/* Reading the family also makes clang emit sock_common whole: the kfunc's declaration
	 * must name a struct, not a forward declaration, for libbpf to match it with the
	 * kernel's. */
	if (!sk || (sk->skc_family != 2 /* AF_INET */ && sk->skc_family != 10 /* AF_INET6 */))
		return 0;
	cookie = bpf_get_socket_cookie(sk);
	if (!bpf_map_lookup_elem(&marked, &cookie))
		return 0;
	if (bpf_sock_destroy(sk) == 0)
		__sync_fetch_and_add(&destroyed, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
