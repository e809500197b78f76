#include "dataplane/lookup_run.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>

namespace tcpshift {

Result<LookupRun> run_lookup(int prog_fd, const Endpoint& client, const Endpoint& frontend, int protocol,
                             uint32_t repeat) {
    bpf_sk_lookup ctx{};
    ctx.family = static_cast<__u32>(client.family);
    ctx.protocol = static_cast<__u32>(protocol);
    ctx.remote_port = htons(client.port);
    ctx.local_port = frontend.port;
    if (client.family == AF_INET) {
        ctx.remote_ip4 = client.addr[0];
        ctx.local_ip4 = frontend.addr[0];
    } else {
        std::memcpy(ctx.remote_ip6, client.addr.data(), 16);
        std::memcpy(ctx.local_ip6, frontend.addr.data(), 16);
    }
    LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &ctx, .ctx_out = &ctx, .ctx_size_in = sizeof(ctx),
                .ctx_size_out = sizeof(ctx), .repeat = static_cast<int>(repeat));
    if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) return fail(system_error("BPF_PROG_TEST_RUN sk_lookup", errno));
    return LookupRun{.verdict = static_cast<int>(opts.retval), .cookie = ctx.cookie, .duration_ns = opts.duration};
}

}  // namespace tcpshift
