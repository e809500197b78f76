#include "dataplane/sock_diag.h"

#include <linux/bpf.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/fd.h"

namespace tcpshift {

namespace {

struct DiagRequest {
    nlmsghdr header;
    inet_diag_req_v2 request;
};

ListeningSocket from_message(const nlmsghdr* header) {
    const auto* msg = static_cast<const inet_diag_msg*>(NLMSG_DATA(header));
    ListeningSocket s{.local = {.family = msg->idiag_family, .port = ntohs(msg->id.idiag_sport)},
                      .inode = msg->idiag_inode,
                      .cookie = static_cast<uint64_t>(msg->id.idiag_cookie[1]) << 32 | msg->id.idiag_cookie[0]};
    std::memcpy(s.local.addr.data(), msg->id.idiag_src, msg->idiag_family == AF_INET ? 4 : 16);
    // The kernel adds INET_DIAG_SKV6ONLY to every IPv6 socket it lists.
    int len = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof(*msg)));
    for (const auto* attr = reinterpret_cast<const rtattr*>(msg + 1); RTA_OK(attr, len); attr = RTA_NEXT(attr, len))
        if (attr->rta_type == INET_DIAG_SKV6ONLY) s.v6only = *static_cast<const uint8_t*>(RTA_DATA(attr)) != 0;
    return s;
}

Result<void> dump_family(int family, std::vector<ListeningSocket>& out) {
    DiagRequest req{};
    req.header.nlmsg_len = sizeof(req);
    req.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.request.sdiag_family = static_cast<uint8_t>(family);
    req.request.sdiag_protocol = IPPROTO_TCP;
    req.request.idiag_states = 1u << BPF_TCP_LISTEN;  // a bit per TCP state; BPF_TCP_* has the kernel's numbers
    return sock_diag_dump(&req, sizeof(req), "list listening TCP sockets with sock_diag",
                          [&](const nlmsghdr* h) { out.push_back(from_message(h)); });
}

}  // namespace

Result<void> sock_diag_dump(const void* request, size_t size, const std::string& what,
                            const std::function<void(const nlmsghdr*)>& each) {
    Fd sock(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!sock) return fail(system_error("open NETLINK_SOCK_DIAG", errno));
    if (::send(sock.get(), request, size, 0) != static_cast<ssize_t>(size))
        return fail(system_error("send a sock_diag request", errno));
    std::vector<char> buffer(1 << 16);
    for (;;) {
        const ssize_t n = ::recv(sock.get(), buffer.data(), buffer.size(), 0);
        if (n < 0) return fail(system_error("read sock_diag", errno));
        int len = static_cast<int>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE) return {};
            if (h->nlmsg_type == NLMSG_ERROR) {
                const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
                // ENOENT: no handler for the family; the kernel loads tcp_diag on demand,
                // unless modules cannot be loaded here.
                return fail(system_error(what + (e->error == -ENOENT ? " (load the tcp_diag module: modprobe tcp_diag)" : ""),
                                         -e->error));
            }
            each(h);
        }
    }
}

Result<std::vector<ListeningSocket>> listening_sockets() {
    std::vector<ListeningSocket> out;
    for (int family : {AF_INET, AF_INET6})
        if (auto ok = dump_family(family, out); !ok) return fail(ok.error());
    return out;
}

bool listener_serves(const ListeningSocket& listener, const Endpoint& address) {
    if (listener.local.port != address.port) return false;
    if (listener.local.family == address.family)
        return listener.local.is_wildcard() || listener.local.addr == address.addr;
    return listener.local.family == AF_INET6 && address.family == AF_INET && listener.local.is_wildcard() &&
           !listener.v6only;
}

}  // namespace tcpshift
