#include "echo_client.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace tcpshift {

namespace {

using Clock = std::chrono::steady_clock;

EchoResult failed(EchoFailure failure, const char* step, int e) {
    const char* name = strerrorname_np(e);
    return EchoResult{.error = std::string(step) + ": " + (name ? name : std::to_string(e)), .failure = failure};
}

EchoResult timed_out(const std::string& what) {
    return EchoResult{.error = what + ": timeout", .failure = EchoFailure::kTimeout};
}

EchoFailure classify(int e) {
    if (e == ECONNREFUSED) return EchoFailure::kRefused;
    if (e == ECONNRESET || e == EPIPE) return EchoFailure::kReset;
    return EchoFailure::kConnect;
}

bool wait_for(int fd, short events, Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd, events, 0};
    return ::poll(&pfd, 1, static_cast<int>(left.count())) > 0;
}

// Non-blocking connect bounded by the deadline, from `source` when it is given.
Fd connect_to(const Endpoint& target, Clock::time_point deadline, EchoResult* failure, const Endpoint* source) {
    Fd fd(::socket(target.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        *failure = failed(EchoFailure::kConnect, "socket", errno);
        return Fd();
    }
    sockaddr_storage ss;
    if (source) {
        const socklen_t source_len = to_sockaddr(*source, &ss);
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), source_len) != 0) {
            *failure = failed(EchoFailure::kConnect, "bind", errno);
            return Fd();
        }
    }
    const socklen_t len = to_sockaddr(target, &ss);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
        *failure = failed(classify(errno), "connect", errno);
        return Fd();
    }
    if (!wait_for(fd.get(), POLLOUT, deadline)) {
        *failure = timed_out("connect");
        return Fd();
    }
    int soerr = 0;
    socklen_t soerr_len = sizeof(soerr);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &soerr_len);
    if (soerr != 0) {
        *failure = failed(classify(soerr), "connect", soerr);
        return Fd();
    }
    return fd;
}

}  // namespace

const char* failure_name(EchoFailure failure) {
    switch (failure) {
        case EchoFailure::kNone: return "none";
        case EchoFailure::kConnect: return "connect";
        case EchoFailure::kRefused: return "refused";
        case EchoFailure::kReset: return "reset";
        case EchoFailure::kTimeout: return "timeout";
        case EchoFailure::kWrongReply: return "wrong_reply";
    }
    return "unknown";
}

EchoResult echo_once(const Endpoint& target, const std::string& line, std::chrono::milliseconds timeout,
                     const Endpoint* source) {
    const auto deadline = Clock::now() + timeout;
    EchoResult r;
    Fd fd = connect_to(target, deadline, &r, source);
    if (!fd) return r;
    const std::string msg = line + "\n";
    if (::send(fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size()))
        return failed(classify(errno), "send", errno);
    ::shutdown(fd.get(), SHUT_WR);
    std::string got;
    for (;;) {
        if (!wait_for(fd.get(), POLLIN, deadline)) return timed_out("read after \"" + got + "\"");
        char buf[1024];
        const ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            return failed(classify(errno), "read", errno);
        }
        got.append(buf, static_cast<size_t>(n));
    }
    if (!got.empty() && got.back() == '\n') got.pop_back();
    return EchoResult{.ok = true, .reply = got};
}

EchoConnection EchoConnection::open(const Endpoint& target, std::chrono::milliseconds timeout, EchoResult* failure) {
    EchoConnection c;
    c.fd_ = connect_to(target, Clock::now() + timeout, failure, nullptr);
    return c;
}

EchoResult EchoConnection::exchange(const std::string& line, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    const std::string msg = line + "\n";
    if (::send(fd_.get(), msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size()))
        return failed(classify(errno), "send", errno);
    for (;;) {
        if (const auto nl = pending_.find('\n'); nl != std::string::npos) {
            EchoResult r{.ok = true, .reply = pending_.substr(0, nl)};
            pending_.erase(0, nl + 1);
            return r;
        }
        if (!wait_for(fd_.get(), POLLIN, deadline)) return timed_out("read");
        char buf[1024];
        const ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
        if (n == 0) return EchoResult{.error = "read: closed by peer", .failure = EchoFailure::kReset};
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            return failed(classify(errno), "read", errno);
        }
        pending_.append(buf, static_cast<size_t>(n));
    }
}

}  // namespace tcpshift
