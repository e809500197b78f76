// tcpshift-echo: the tcp-echo backend of the demo and the tests. Like Istio's
// tcp-echo-server, it answers every line it receives with "PREFIX line".
//
//   tcpshift-echo --listen 127.0.0.1:9001 --prefix one [--reuseport] [--reset-percent 5]
//
// With --reset-percent, that share of its connections (drawn at random) is reset on its first
// line instead of answered; with --unanswered-percent, that share is never answered and closed
// once the client is done: faulty releases, for canary tests.
//
// It prints "listening on ADDR" once every socket listens. On SIGTERM or SIGINT it stops
// listening at once and finishes the connections it has (up to 5 s), as a server handing over
// to its successor does.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/endpoint.h"
#include "base/fd.h"

namespace {

using tcpshift::Endpoint;
using tcpshift::Fd;

volatile sig_atomic_t stopping = 0;

void on_signal(int) { stopping = 1; }

Fd listen_on(const Endpoint& ep, bool reuseport, bool v6only) {
    Fd fd(::socket(ep.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return fd;
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (ep.family == AF_INET6) {
        const int v6 = v6only ? 1 : 0;
        ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6));
    }
    sockaddr_storage ss;
    const socklen_t len = tcpshift::to_sockaddr(ep, &ss);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd.get(), 4096) != 0) return Fd();
    return fd;
}

struct Connection {
    Fd fd;
    bool reset = false;   // reset on the first line, unanswered
    bool silent = false;  // never answered; closed at the client's end of input
    std::string pending;  // bytes after the last newline
};

void on_stop_signals() {
    ::signal(SIGPIPE, SIG_IGN);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
}

// Listens on every address, each socket registered with `epoll`; on failure says why on
// stderr and returns the exit status.
std::optional<int> listen_all(const std::vector<std::string>& listen, bool reuseport, bool v6only, const Fd& epoll,
                              std::vector<Fd>& listeners) {
    for (const auto& text : listen) {
        auto endpoint = tcpshift::parse_endpoint(text);
        if (!endpoint) {
            std::cerr << "tcpshift-echo: --listen " << endpoint.error().message << "\n";
            return 2;
        }
        Fd fd = listen_on(*endpoint, reuseport, v6only);
        if (!fd) {
            std::cerr << "tcpshift-echo: listen on " << text << ": " << std::strerror(errno) << "\n";
            return 1;
        }
        epoll_event ev{.events = EPOLLIN, .data = {.fd = fd.get()}};
        ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd.get(), &ev);
        listeners.push_back(std::move(fd));
    }
    return std::nullopt;
}

class EchoServer {
   public:
    EchoServer(std::string prefix, Fd epoll, std::vector<Fd> listeners, double reset_percent, double silent_percent)
        : prefix_(std::move(prefix)), epoll_(std::move(epoll)), listeners_(std::move(listeners)),
          reset_fraction_(reset_percent / 100), silent_fraction_(silent_percent / 100), random_(std::random_device{}()) {}

    // Serves until a stop signal; then stops listening at once and finishes the connections
    // it has, for up to 5 s.
    void run() {
        std::vector<epoll_event> events(256);
        std::chrono::steady_clock::time_point drain_until{};
        for (;;) {
            if (stopping && !listeners_.empty()) {
                listeners_.clear();  // closing them hands queued connections over (tcp_migrate_req)
                drain_until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
            }
            if (stopping && (connections_.empty() || std::chrono::steady_clock::now() >= drain_until)) break;
            const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), 200);
            for (int i = 0; i < n; ++i) ready(events[i].data.fd);
        }
    }

   private:
    void ready(int fd) {
        bool is_listener = false;
        for (const auto& l : listeners_) is_listener = is_listener || l.get() == fd;
        if (is_listener) {
            accept_all(fd);
            return;
        }
        auto it = connections_.find(fd);
        if (it == connections_.end()) return;
        if (echo(fd, it->second)) return;
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
        connections_.erase(it);
    }

    void accept_all(int listener) {
        for (;;) {
            const int c = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c < 0) break;
            epoll_event ev{.events = EPOLLIN | EPOLLRDHUP, .data = {.fd = c}};
            ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c, &ev);
            connections_[c].fd = Fd(c);
            const double draw = std::uniform_real_distribution<double>(0, 1)(random_);
            connections_[c].reset = draw < reset_fraction_;
            connections_[c].silent = !connections_[c].reset && draw < reset_fraction_ + silent_fraction_;
        }
    }

    // Answers every whole line that has arrived; false once the connection is done with.
    bool echo(int fd, Connection& connection) {
        std::string& pending = connection.pending;
        for (;;) {
            const ssize_t got = ::recv(fd, buf_, sizeof(buf_), 0);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) return false;
            if (got < 0) return true;
            pending.append(buf_, static_cast<size_t>(got));
            if (connection.reset && pending.find('\n') != std::string::npos) {
                const linger abortive{.l_onoff = 1, .l_linger = 0};
                ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive));
                return false;
            }
            std::string reply;
            size_t start = 0;
            for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1)
                reply += prefix_ + " " + pending.substr(start, nl - start + 1);
            pending.erase(0, start);
            // Replies are small; a full send buffer means the peer stopped reading.
            if (connection.silent) continue;
            if (!reply.empty() && ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) return false;
        }
    }

    std::string prefix_;
    Fd epoll_;
    std::vector<Fd> listeners_;
    std::map<int, Connection> connections_;
    double reset_fraction_;
    double silent_fraction_;
    std::mt19937_64 random_;
    char buf_[16384];
};

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> listen;
    std::string prefix = "one";
    bool reuseport = false, v6only = false;
    double reset_percent = 0, silent_percent = 0;
    CLI::App app{"tcp-echo backend: answers each line with \"PREFIX line\", like Istio's tcp-echo-server",
                 "tcpshift-echo"};
    app.add_option("-l,--listen", listen, "ADDRESS:PORT to listen on; repeatable")->required();
    app.add_option("-p,--prefix", prefix, "word put before every echoed line")->capture_default_str();
    app.add_flag("--reuseport", reuseport, "set SO_REUSEPORT, to join or hand over a listener group");
    app.add_flag("--v6only", v6only, "IPv6 sockets take IPv6 only (default: dual-stack)");
    app.add_option("--reset-percent", reset_percent,
                   "reset this share of connections (at random) on their first line instead of answering")
        ->check(CLI::Range(0.0, 100.0));
    app.add_option("--unanswered-percent", silent_percent,
                   "never answer this share of connections (at random); close each when its client is done")
        ->check(CLI::Range(0.0, 100.0));
    CLI11_PARSE(app, argc, argv);

    on_stop_signals();
    Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
    std::vector<Fd> listeners;
    if (auto status = listen_all(listen, reuseport, v6only, epoll, listeners)) return *status;
    std::cout << "listening on";
    for (const auto& text : listen) std::cout << " " << text;
    std::cout << std::endl;
    EchoServer(prefix, std::move(epoll), std::move(listeners), reset_percent, silent_percent).run();
    return 0;
}
