#include "client.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "tcpshift/fd.h"

#include <httplib.h>

#include <sstream>

namespace tcpshift::testing {

namespace {

std::string errno_text(const char* step, int e) {
    const char* name = strerrorname_np(e);
    return std::string(step) + ": " + (name ? name : std::to_string(e));
}

bool wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd, events, 0};
    return ::poll(&pfd, 1, static_cast<int>(left.count())) > 0;
}

}  // namespace

Endpoint endpoint(const std::string& text) {
    auto ep = parse_endpoint(text);
    if (!ep) std::abort();
    return *ep;
}

EchoResult echo_once(const Endpoint& target, const std::string& line, std::chrono::milliseconds timeout) {
    EchoResult r;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    Fd fd(::socket(target.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        r.error = errno_text("socket", errno);
        return r;
    }
    sockaddr_storage ss;
    const socklen_t len = to_sockaddr(target, &ss);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
        r.error = errno_text("connect", errno);
        return r;
    }
    if (!wait_for(fd.get(), POLLOUT, deadline)) {
        r.error = "connect: timeout";
        return r;
    }
    int soerr = 0;
    socklen_t soerr_len = sizeof(soerr);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &soerr_len);
    if (soerr != 0) {
        r.error = errno_text("connect", soerr);
        return r;
    }
    const std::string msg = line + "\n";
    if (::send(fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size())) {
        r.error = errno_text("send", errno);
        return r;
    }
    ::shutdown(fd.get(), SHUT_WR);
    std::string got;
    for (;;) {
        if (!wait_for(fd.get(), POLLIN, deadline)) {
            r.error = "read: timeout after \"" + got + "\"";
            return r;
        }
        char buf[1024];
        const ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            r.error = errno_text("read", errno);
            return r;
        }
        got.append(buf, static_cast<size_t>(n));
    }
    if (!got.empty() && got.back() == '\n') got.pop_back();
    r.ok = true;
    r.reply = got;
    return r;
}

std::string Tally::str() const {
    std::string s;
    for (const auto& [prefix, count] : by_prefix) s += prefix + "=" + std::to_string(count) + " ";
    s += "failures=" + std::to_string(failures);
    for (const auto& e : first_errors) s += " [" + e + "]";
    return s;
}

HttpReply http_get(int port, const std::string& path) {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(2);
    client.set_read_timeout(5);
    auto res = client.Get(path);
    if (!res) return {};
    return HttpReply{.status = res->status, .body = res->body};
}

double metric_value(const std::string& text, const std::string& series) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line))
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
            return std::stod(line.substr(series.size() + 1));
    return -1;
}

int free_port() {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage ss;
    socklen_t len = to_sockaddr(endpoint("127.0.0.1:1"), &ss);
    reinterpret_cast<sockaddr_in*>(&ss)->sin_port = 0;
    ::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

Tally tally(const Endpoint& target, size_t n, std::chrono::milliseconds timeout) {
    Tally t;
    for (size_t i = 0; i < n; ++i) {
        const EchoResult r = echo_once(target, "hello", timeout);
        if (!r.ok) {
            ++t.failures;
            if (t.first_errors.size() < 5) t.first_errors.push_back(r.error);
            continue;
        }
        ++t.by_prefix[r.reply.substr(0, r.reply.find(' '))];
    }
    return t;
}

}  // namespace tcpshift::testing
