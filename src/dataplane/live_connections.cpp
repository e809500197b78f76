#include "dataplane/live_connections.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

#include "bpf/abi.h"
#include "destroy_bpf.skel.h"
#include "dataplane/sock_diag.h"

namespace tcpshift {

namespace {

// A dump request that asks for each socket's tcp_info and its "connections" storage.
struct StorageDumpRequest {
    nlmsghdr header;
    inet_diag_req_v2 request;
    rtattr storages;  // INET_DIAG_REQ_SK_BPF_STORAGES, nested
    rtattr map_fd;    // SK_DIAG_BPF_STORAGE_REQ_MAP_FD
    uint32_t fd;
};

Endpoint endpoint_of(int family, const __be32* addr, __be16 port) {
    Endpoint e{.family = family, .port = ntohs(port)};
    std::memcpy(e.addr.data(), addr, family == AF_INET ? 4 : 16);
    return e;
}

// The storage value of the one map the request named, if the socket has it. Netlink aligns an
// attribute to 4 bytes only, and the value holds a __u64: read it with memcpy.
std::optional<ts_connection> storage_of(const rtattr* storages) {
    int len = static_cast<int>(RTA_PAYLOAD(storages));
    for (const auto* s = static_cast<const rtattr*>(RTA_DATA(storages)); RTA_OK(s, len); s = RTA_NEXT(s, len)) {
        if ((s->rta_type & NLA_TYPE_MASK) != SK_DIAG_BPF_STORAGE) continue;
        int inner = static_cast<int>(RTA_PAYLOAD(s));
        for (const auto* a = static_cast<const rtattr*>(RTA_DATA(s)); RTA_OK(a, inner); a = RTA_NEXT(a, inner))
            if ((a->rta_type & NLA_TYPE_MASK) == SK_DIAG_BPF_STORAGE_MAP_VALUE &&
                RTA_PAYLOAD(a) >= sizeof(ts_connection)) {
                ts_connection value;
                std::memcpy(&value, RTA_DATA(a), sizeof(value));
                return value;
            }
    }
    return std::nullopt;
}

// One listed socket, when it is a steered connection of a backend.
bool from_message(const nlmsghdr* header, LiveConnection& out) {
    const auto* msg = static_cast<const inet_diag_msg*>(NLMSG_DATA(header));
    std::optional<ts_connection> conn;
    std::optional<uint32_t> idle_ms;
    int len = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof(*msg)));
    for (const auto* attr = reinterpret_cast<const rtattr*>(msg + 1); RTA_OK(attr, len); attr = RTA_NEXT(attr, len)) {
        const int type = attr->rta_type & NLA_TYPE_MASK;
        if (type == INET_DIAG_SK_BPF_STORAGES) conn = storage_of(attr);
        // An older kernel's tcp_info is shorter; the fields read here are in every version.
        // tcp_info holds __u64s and netlink aligns to 4 bytes: copy the two fields out.
        if (type == INET_DIAG_INFO && RTA_PAYLOAD(attr) >= offsetof(tcp_info, tcpi_rcv_ssthresh)) {
            const auto* data = static_cast<const char*>(RTA_DATA(attr));
            uint32_t received = 0, sent = 0;
            std::memcpy(&received, data + offsetof(tcp_info, tcpi_last_data_recv), sizeof(received));
            std::memcpy(&sent, data + offsetof(tcp_info, tcpi_last_data_sent), sizeof(sent));
            idle_ms = std::min(received, sent);
        }
    }
    if (!conn || (conn->flags & TS_CONN_LISTENER) || !(conn->flags & TS_CONN_STEERED)) return false;
    out = LiveConnection{
        .cookie = static_cast<uint64_t>(msg->id.idiag_cookie[1]) << 32 | msg->id.idiag_cookie[0],
        .local = endpoint_of(msg->idiag_family, msg->id.idiag_src, msg->id.idiag_sport),
        .remote = endpoint_of(msg->idiag_family, msg->id.idiag_dst, msg->id.idiag_dport),
        .service_id = conn->service_id,
        .backend_id = conn->backend_ids[0],
        .established_ns = conn->established_ns,
        .idle_ms = idle_ms.value_or(0),
        .family = msg->idiag_family,
        .id = msg->id,
    };
    return true;
}

Result<void> dump_family(int family, const Fd& connections, std::vector<LiveConnection>& out) {
    StorageDumpRequest req{};
    req.header.nlmsg_len = sizeof(req);
    req.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.request.sdiag_family = static_cast<uint8_t>(family);
    req.request.sdiag_protocol = IPPROTO_TCP;
    // A bit per TCP state: the connections that still carry payload both ways or one way.
    req.request.idiag_states = (1u << BPF_TCP_ESTABLISHED) | (1u << BPF_TCP_CLOSE_WAIT);
    req.request.idiag_ext = 1u << (INET_DIAG_INFO - 1);
    req.storages.rta_len = RTA_LENGTH(sizeof(rtattr) + sizeof(uint32_t));
    req.storages.rta_type = INET_DIAG_REQ_SK_BPF_STORAGES | NLA_F_NESTED;
    req.map_fd.rta_len = RTA_LENGTH(sizeof(uint32_t));
    req.map_fd.rta_type = SK_DIAG_BPF_STORAGE_REQ_MAP_FD;
    req.fd = static_cast<uint32_t>(connections.get());
    return sock_diag_dump(&req, sizeof(req), "list TCP connections with their \"connections\" storage (sock_diag)",
                          [&](const nlmsghdr* h) {
                              LiveConnection c;
                              if (from_message(h, c)) out.push_back(c);
                          });
}

struct DestroySkeletonDeleter {
    void operator()(destroy_bpf* skel) const { destroy_bpf__destroy(skel); }
};
using DestroySkeleton = std::unique_ptr<destroy_bpf, DestroySkeletonDeleter>;

// The iterator's object, loaded once per process; empty where the kernel refuses it (no
// bpf_sock_destroy before 6.5) or TCPSHIFT_DESTROY=netlink asks for the other path.
DestroySkeleton& iterator_object() {
    static DestroySkeleton skel;
    static std::once_flag once;
    std::call_once(once, [] {
        const char* forced = std::getenv("TCPSHIFT_DESTROY");
        if (forced && std::string(forced) == "netlink") return;
        // The probe's failure is the answer, not an error: libbpf must not print it.
        auto quiet = libbpf_set_print(nullptr);
        skel.reset(destroy_bpf__open_and_load());
        libbpf_set_print(quiet);
    });
    return skel;
}

Result<size_t> destroy_by_iterator(destroy_bpf& skel, const std::vector<LiveConnection>& doomed) {
    const int map = bpf_map__fd(skel.maps.marked);
    const size_t before = skel.bss->destroyed;
    const uint8_t one = 1;
    for (const auto& c : doomed)
        if (bpf_map_update_elem(map, &c.cookie, &one, BPF_ANY) != 0)
            return fail(system_error("update map \"marked\"", errno));
    // The iterator walks the sockets of the namespace it is created in: the calling thread's.
    bpf_link* link = bpf_program__attach_iter(skel.progs.destroy_marked, nullptr);
    Result<void> ran;
    if (!link) {
        ran = fail(system_error("attach the destroy_marked iterator", errno));
    } else {
        Fd iter(bpf_iter_create(bpf_link__fd(link)));
        if (!iter) {
            ran = fail(system_error("create the destroy_marked iterator", errno));
        } else {
            char buffer[256];
            while (::read(iter.get(), buffer, sizeof(buffer)) > 0) {
            }
        }
        bpf_link__destroy(link);
    }
    for (const auto& c : doomed) bpf_map_delete_elem(map, &c.cookie);
    if (!ran) return fail(ran.error());
    return skel.bss->destroyed - before;
}

struct DestroyRequest {
    nlmsghdr header;
    inet_diag_req_v2 request;
};

Result<size_t> destroy_by_netlink(const std::vector<LiveConnection>& doomed) {
    Fd sock(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!sock) return fail(system_error("open NETLINK_SOCK_DIAG", errno));
    size_t destroyed = 0;
    for (const auto& c : doomed) {
        DestroyRequest req{};
        req.header.nlmsg_len = sizeof(req);
        req.header.nlmsg_type = SOCK_DESTROY;
        req.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        req.request.sdiag_family = static_cast<uint8_t>(c.family);
        req.request.sdiag_protocol = IPPROTO_TCP;
        req.request.idiag_states = ~0u;
        req.request.id = c.id;  // with its cookie: a socket that reused the 4-tuple is not this one
        if (::send(sock.get(), &req, sizeof(req), 0) != static_cast<ssize_t>(sizeof(req)))
            return fail(system_error("send SOCK_DESTROY", errno));
        char buffer[512];
        const ssize_t n = ::recv(sock.get(), buffer, sizeof(buffer), 0);
        if (n < static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr))))
            return fail(system_error("read the answer to SOCK_DESTROY", n < 0 ? errno : EPROTO));
        const auto* h = reinterpret_cast<const nlmsghdr*>(buffer);
        const int error = h->nlmsg_type == NLMSG_ERROR ? -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error : 0;
        if (error == 0) {
            ++destroyed;
        } else if (error == EOPNOTSUPP) {
            return fail(system_error("destroy a socket with SOCK_DESTROY (the kernel lacks CONFIG_INET_DIAG_DESTROY)",
                                     error));
        } else if (error != ENOENT) {  // ENOENT: it closed meanwhile
            return fail(system_error("destroy socket " + c.local.str() + " <- " + c.remote.str() + " (SOCK_DESTROY)",
                                     error));
        }
    }
    return destroyed;
}

}  // namespace

Result<std::vector<LiveConnection>> steered_connections(const Fd& connections) {
    std::vector<LiveConnection> out;
    for (int family : {AF_INET, AF_INET6})
        if (auto ok = dump_family(family, connections, out); !ok) return fail(ok.error());
    return out;
}

const char* destroy_path_name(DestroyPath path) {
    return path == DestroyPath::kIterator ? "bpf_sock_destroy iterator" : "netlink SOCK_DESTROY";
}

DestroyPath destroy_path() { return iterator_object() ? DestroyPath::kIterator : DestroyPath::kNetlink; }

Result<size_t> destroy_connections(const std::vector<LiveConnection>& doomed) {
    if (doomed.empty()) return size_t{0};
    if (auto& skel = iterator_object()) return destroy_by_iterator(*skel, doomed);
    return destroy_by_netlink(doomed);
}


}  // namespace tcpshift
