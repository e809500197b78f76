// Backends that fail in the ways a kernel sees: one that resets what it accepts, one whose
// listen queue is full. Each listens in the namespace of the thread that constructs it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "base/fd.h"

namespace tcpshift::testing {

// A backend that accepts every connection and resets it at once, having written nothing (or
// having written `first`): a crashing server behind a live listener. The listener belongs to
// the namespace of the thread that constructs it.
class ResettingBackend {
   public:
    explicit ResettingBackend(uint16_t port, std::string first = "")
        : listener_(::socket(AF_INET, SOCK_STREAM, 0)), first_(std::move(first)) {
        const int one = 1;
        ::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sockaddr_in addr{.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = {htonl(INADDR_LOOPBACK)}};
        ok_ = ::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
              ::listen(listener_.get(), 128) == 0;
        if (ok_) thread_ = std::thread([this] { serve(); });
    }
    ~ResettingBackend() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    bool ok() const { return ok_; }
    uint64_t reset() const { return reset_; }

   private:
    void serve() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
        while (!stop_ && std::chrono::steady_clock::now() < deadline) {
            pollfd p{listener_.get(), POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            const int fd = ::accept(listener_.get(), nullptr, nullptr);
            if (fd < 0) continue;
            if (!first_.empty()) {
                // After the client's first bytes, so that payload went both ways.
                pollfd in{fd, POLLIN, 0};
                char byte;
                if (::poll(&in, 1, 1000) == 1) ::recv(fd, &byte, 1, 0);
                ::send(fd, first_.data(), first_.size(), MSG_NOSIGNAL);
            }
            const linger abort{.l_onoff = 1, .l_linger = 0};
            ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
            ::close(fd);
            ++reset_;
        }
    }

    Fd listener_;
    std::string first_;
    bool ok_ = false;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> reset_{0};
    std::thread thread_;
};

// A listener that never accepts, with a backlog of one: after two connections wait in its accept
// queue, the kernel drops every SYN handed to it (ListenOverflows).
class StuckListener {
   public:
    explicit StuckListener(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        const int one = 1;
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sockaddr_in a{.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = {htonl(INADDR_LOOPBACK)}};
        ok_ = ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && ::listen(fd_.get(), 1) == 0;
    }
    bool ok() const { return ok_; }

   private:
    Fd fd_;
    bool ok_ = false;
};

}  // namespace tcpshift::testing
