#include "dataplane/local_routes.h"

#include <ifaddrs.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "base/fd.h"

namespace tcpshift {

namespace {

struct RouteRequest {
    nlmsghdr header;
    rtmsg route;
    char attributes[64];
};

void add_attribute(RouteRequest& req, unsigned short type, const void* data, size_t len) {
    auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) + NLMSG_ALIGN(req.header.nlmsg_len));
    rta->rta_type = type;
    rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
    std::memcpy(RTA_DATA(rta), data, len);
    req.header.nlmsg_len = NLMSG_ALIGN(req.header.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

// Sends one route request and returns the kernel's errno (0 on success).
Result<int> route_request(int type, int flags, const Endpoint& address) {
    Fd sock(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!sock) return fail(system_error("open rtnetlink socket", errno));
    RouteRequest req{};
    req.header.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
    req.header.nlmsg_type = static_cast<unsigned short>(type);
    req.header.nlmsg_flags = static_cast<unsigned short>(NLM_F_REQUEST | NLM_F_ACK | flags);
    req.header.nlmsg_seq = 1;
    req.route.rtm_family = static_cast<unsigned char>(address.family);
    req.route.rtm_dst_len = address.family == AF_INET ? 32 : 128;
    req.route.rtm_table = RT_TABLE_LOCAL;
    req.route.rtm_protocol = kRouteProtocol;
    req.route.rtm_scope = RT_SCOPE_HOST;
    req.route.rtm_type = RTN_LOCAL;
    add_attribute(req, RTA_DST, address.addr.data(), address.family == AF_INET ? 4 : 16);
    const unsigned lo = if_nametoindex("lo");
    if (lo == 0) return fail(system_error("find interface lo", errno));
    add_attribute(req, RTA_OIF, &lo, sizeof(lo));

    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(sock.get(), &req, req.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0)
        return fail(system_error("send rtnetlink route request", errno));
    char buf[4096];
    const ssize_t n = ::recv(sock.get(), buf, sizeof(buf), 0);
    if (n < 0) return fail(system_error("read rtnetlink reply", errno));
    const auto* reply = reinterpret_cast<const nlmsghdr*>(buf);
    if (!NLMSG_OK(reply, static_cast<unsigned>(n)) || reply->nlmsg_type != NLMSG_ERROR)
        return fail(system_error("rtnetlink: unexpected reply to a route request"));
    const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(reply));
    return -err->error;
}

}  // namespace

Result<bool> add_local_route(const Endpoint& address) {
    auto err = route_request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, address);
    if (!err) return fail(err.error());
    if (*err == EEXIST) return false;
    if (*err != 0) return fail(system_error("add local route for " + address.address_str(), *err));
    return true;
}

bool address_is_local(const Endpoint& address) {
    Fd sock(::socket(address.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) return false;
    Endpoint any_port = address;
    any_port.port = 0;
    sockaddr_storage ss;
    const socklen_t len = to_sockaddr(any_port, &ss);
    return ::bind(sock.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0;
}

InterfaceAddresses InterfaceAddresses::read() {
    InterfaceAddresses out;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return out;
    for (const ifaddrs* ifa = list; ifa; ifa = ifa->ifa_next) {
        if (!ifa->ifa_addr) continue;
        Endpoint ep{.family = ifa->ifa_addr->sa_family};
        if (ep.family == AF_INET)
            std::memcpy(ep.addr.data(), &reinterpret_cast<const sockaddr_in*>(ifa->ifa_addr)->sin_addr, 4);
        else if (ep.family == AF_INET6)
            std::memcpy(ep.addr.data(), &reinterpret_cast<const sockaddr_in6*>(ifa->ifa_addr)->sin6_addr, 16);
        else
            continue;
        out.addresses_.insert(ep);
    }
    ::freeifaddrs(list);
    return out;
}

bool InterfaceAddresses::holds(const Endpoint& address) const {
    if (address.family == AF_INET && (ntohl(address.addr[0]) >> 24) == 127) return true;
    if (address.family == AF_INET6 && address.addr == std::array<uint32_t, 4>{0, 0, 0, htonl(1)}) return true;
    Endpoint key{.family = address.family, .addr = address.addr};
    return addresses_.count(key) > 0;
}

Result<void> remove_local_route(const Endpoint& address) {
    auto err = route_request(RTM_DELROUTE, 0, address);
    if (!err) return fail(err.error());
    if (*err != 0 && *err != ESRCH && *err != ENOENT)
        return fail(system_error("remove local route for " + address.address_str(), *err));
    return {};
}

}  // namespace tcpshift
