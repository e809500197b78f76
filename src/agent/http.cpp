#include "agent/http.h"

#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <thread>

namespace tcpshift {

struct MetricsServer::Impl {
    httplib::Server server;
    uint16_t port = 0;
    std::thread thread;
    std::atomic<bool> ended{false};
};

namespace {

struct DirCloser {
    void operator()(DIR* dir) const { closedir(dir); }
};

uint16_t local_port(int fd) {
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return 0;
    if (local.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
    if (local.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
    return 0;
}

// cpp-httplib 0.11 keeps no list of its connections, and a worker waits on an idle one for
// its keep-alive timeout even after the listening socket is closed. The connections are
// this process's TCP sockets accepted on the server's port: shutting them down wakes their
// workers at once. The agent has no other TCP socket on that port (an adopted listener's fd
// lives only while it is registered, on the main thread, which is the caller).
void shut_down_connections(uint16_t port) {
    std::unique_ptr<DIR, DirCloser> fds(opendir("/proc/self/fd"));
    if (!fds) return;
    while (const dirent* entry = readdir(fds.get())) {
        const int fd = std::atoi(entry->d_name);
        int type = 0, listening = 0;
        socklen_t len = sizeof(int);
        if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) continue;
        len = sizeof(int);
        if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening) continue;
        if (local_port(fd) == port) ::shutdown(fd, SHUT_RDWR);
    }
}

}  // namespace

MetricsServer::MetricsServer() : impl_(std::make_unique<Impl>()) {}
MetricsServer::MetricsServer(MetricsServer&&) noexcept = default;
MetricsServer& MetricsServer::operator=(MetricsServer&&) noexcept = default;
MetricsServer::~MetricsServer() { stop(); }

Result<MetricsServer> MetricsServer::bind(const Endpoint& address) {
    MetricsServer s;
    // SO_REUSEADDR lets a restarted agent bind beside its predecessor's TIME_WAIT
    // connections; unlike SO_REUSEPORT it never lets two sockets listen on one address.
    s.impl_->server.set_socket_options([](socket_t sock) {
        const int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    errno = 0;
    if (!s.impl_->server.bind_to_port(address.address_str(), address.port)) {
        const int err = errno;  // bind()'s, which cpp-httplib does not report
        const std::string what = "metrics: listen on " + address.str() + " (--metrics-addr)";
        if (err == 0) return fail(system_error(what + ": in use, or not an address of this host"));
        return fail(system_error(what, err));
    }
    s.impl_->port = address.port;
    return s;
}

void MetricsServer::serve(MetricsHandlers handlers) {
    httplib::Server& server = impl_->server;
    server.Get("/metrics", [metrics = std::move(handlers.metrics)](const httplib::Request&, httplib::Response& res) {
        auto text = metrics();
        if (!text) {
            res.status = 500;
            res.set_content(text.error().message + "\n", "text/plain");
            return;
        }
        res.set_content(*text, "text/plain; version=0.0.4; charset=utf-8");
    });
    server.Get("/healthz", [ready = std::move(handlers.ready)](const httplib::Request&, httplib::Response& res) {
        const bool ok = ready();
        res.status = ok ? 200 : 503;
        res.set_content(ok ? "ok\n" : "starting, or not attached\n", "text/plain");
    });
    Impl* impl = impl_.get();
    impl->thread = std::thread([impl] {
        impl->server.listen_after_bind();
        impl->ended = true;
    });
    // A stop() before the thread listens would be lost, and the thread would never end.
    while (!server.is_running() && !impl->ended) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void MetricsServer::stop() {
    if (!impl_ || !impl_->thread.joinable()) return;
    impl_->server.stop();
    shut_down_connections(impl_->port);
    impl_->thread.join();
}

}  // namespace tcpshift
