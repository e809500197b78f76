// The two ends of a steered connection: the client's getpeername() says the virtual address
// and port it asked for, and the backend sees the client pod's own address and port, with no
// NAT or proxy between them. In IPv4, IPv6, and IPv4 through a dual-stack socket.
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <cstring>

#include "base/endpoint.h"
#include "base/fd.h"
#include "base/netns.h"
#include "connect_fixture.h"

namespace tcpshift::testing {
namespace {

constexpr uint16_t kPeerPort = 9100;  // the test's own backend listeners, beside tcp-echo on 9000

// "ADDRESS PORT" of a socket address, IPv4 and IPv6 alike ("::ffff:10.96.0.50 9000").
std::string address_text(const sockaddr_storage& ss) {
    char text[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
        return std::string(text) + " " + std::to_string(ntohs(in->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
        return std::string(text) + " " + std::to_string(ntohs(in6->sin6_port));
    }
    return "family " + std::to_string(ss.ss_family);
}

// What the client saw of its connection; `failed_step` names the call that failed, if any.
struct ClientView {
    char failed_step[16] = "";
    int error = 0;
    sockaddr_storage peer{};
    sockaddr_storage self{};
};

// Runs in the forked child: only system calls from here on. Joins the cgroup and the
// pod's namespace, connects, and reports; then holds the connection until `hold` closes.
[[noreturn]] void client_child(const char* cgroup_procs, const char* netns_path, int family,
                               const sockaddr_storage& target, socklen_t target_len, int report, int hold) {
    ClientView v;
    const auto fail = [&](const char* step) {
        ::strncpy(v.failed_step, step, sizeof(v.failed_step) - 1);
        v.error = errno;
        (void)!::write(report, &v, sizeof(v));
        ::_exit(1);
    };
    const int cg = ::open(cgroup_procs, O_WRONLY | O_CLOEXEC);
    if (cg < 0 || ::write(cg, "0", 1) != 1) fail("join cgroup");
    const int ns = ::open(netns_path, O_RDONLY | O_CLOEXEC);
    if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) fail("setns");
    const int s = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) fail("socket");
    if (::connect(s, reinterpret_cast<const sockaddr*>(&target), target_len) != 0) fail("connect");
    socklen_t len = sizeof(v.peer);
    if (::getpeername(s, reinterpret_cast<sockaddr*>(&v.peer), &len) != 0) fail("getpeername");
    len = sizeof(v.self);
    if (::getsockname(s, reinterpret_cast<sockaddr*>(&v.self), &len) != 0) fail("getsockname");
    (void)!::write(report, &v, sizeof(v));
    char byte;
    (void)!::read(hold, &byte, 1);
    ::_exit(0);
}

bool readable_within(int fd, int ms) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    return ::poll(&p, 1, ms) == 1;
}

// Connects to `target` with a `family` socket from a child process in `pod` and `cgroup`;
// fills `view` with what it saw, and `backend_view` with the peer the `listener` accepted.
void connect_and_accept(const Pod& pod, const TestCgroup& cgroup, int family, const std::string& target,
                        const Fd& listener, ClientView& view, sockaddr_storage& backend_view) {
    auto ep = parse_endpoint(target);
    ASSERT_TRUE(ep.has_value()) << target;
    sockaddr_storage ss{};
    const socklen_t ss_len = to_sockaddr(*ep, &ss);
    const std::string procs = cgroup.path() + "/cgroup.procs", netns_path = "/var/run/netns/" + pod.netns;
    int report[2], hold[2];
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(hold, O_CLOEXEC), 0);
    const Fd report_read(report[0]), report_write(report[1]), hold_read(hold[0]);
    Fd hold_write(hold[1]);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) client_child(procs.c_str(), netns_path.c_str(), family, ss, ss_len, report[1], hold[0]);
    const bool reported = readable_within(report[0], 5000) && ::read(report[0], &view, sizeof(view)) == sizeof(view);
    if (reported && view.failed_step[0] == '\0' && readable_within(listener.get(), 5000)) {
        socklen_t len = sizeof(backend_view);
        const Fd accepted(::accept4(listener.get(), reinterpret_cast<sockaddr*>(&backend_view), &len, SOCK_CLOEXEC));
        EXPECT_TRUE(accepted.valid()) << "accept: " << std::strerror(errno);
    }
    hold_write.reset();
    ::kill(pid, SIGKILL);  // a child stuck before its report dies too
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(reported) << "the client reported nothing within 5 s";
    ASSERT_STREQ(view.failed_step, "") << std::strerror(view.error);
}

// A listener on `listen` in `netns`, made there and used from here.
Fd listen_in(const std::string& netns, const std::string& listen) {
    auto in = ScopedNetns::enter(netns);
    auto ep = parse_endpoint(listen);
    if (!in || !ep) return Fd();
    Fd fd(::socket(ep->family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    if (ep->family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    sockaddr_storage ss{};
    const socklen_t len = to_sockaddr(*ep, &ss);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd.get(), 16) != 0) return Fd();
    return fd;
}

TEST_F(ConnectTest, GetpeernameSaysTheVirtualAddressAndTheBackendSeesTheClientPod) {
    TCPSHIFT_REQUIRE_ROOT();
    const Pod& backend = node().backend(0);
    const Pod& client = node().client();
    node().apply(traffic_shift("peer", {kFrontendV4, kFrontendV6},
                               {{.name = "v1",
                                 .weight = 100,
                                 .backends = {backend.ipv4_endpoint(kPeerPort), backend.ipv6_endpoint(kPeerPort)}}}));
    const Fd v4 = listen_in(backend.netns, backend.ipv4_endpoint(kPeerPort));
    const Fd v6 = listen_in(backend.netns, backend.ipv6_endpoint(kPeerPort));
    ASSERT_TRUE(v4.valid() && v6.valid()) << std::strerror(errno);
    struct Case {
        std::string desc;
        int family;
        std::string target;
        const Fd* listener;
        std::string peer;             // what getpeername() must say
        std::string backend_address;  // the client address the backend must see
    };
    const std::vector<Case> cases{
        {.desc = "IPv4",
         .family = AF_INET,
         .target = kFrontendV4,
         .listener = &v4,
         .peer = "10.96.0.50 9000",
         .backend_address = client.ipv4},
        {.desc = "IPv6",
         .family = AF_INET6,
         .target = kFrontendV6,
         .listener = &v6,
         .peer = "fd00:96::50 9000",
         .backend_address = client.ipv6},
        {.desc = "IPv4 through a dual-stack socket",
         .family = AF_INET6,
         .target = "[::ffff:10.96.0.50]:9000",
         .listener = &v4,
         .peer = "::ffff:10.96.0.50 9000",
         .backend_address = client.ipv4},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        ClientView view;
        sockaddr_storage seen{};
        connect_and_accept(client, node().cgroup(), c.family, c.target, *c.listener, view, seen);
        if (HasFatalFailure()) return;
        EXPECT_EQ(address_text(view.peer), c.peer);
        // The client's own port, as the backend must see it: the connection is end to end.
        const std::string self = address_text(view.self);
        const std::string self_port = self.substr(self.rfind(' ') + 1);
        EXPECT_EQ(address_text(seen), c.backend_address + " " + self_port) << "the client's socket is " << self;
    }
}

}  // namespace
}  // namespace tcpshift::testing
