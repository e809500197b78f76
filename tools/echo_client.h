// A tcp-echo client: the tests, the load generator and the benchmark talk to backends with it.
// It works in the network namespace of the calling thread.
#pragma once

#include <chrono>
#include <string>

#include "base/endpoint.h"
#include "base/fd.h"

namespace tcpshift {

// How an exchange failed, as the load generator counts it.
enum class EchoFailure { kNone, kConnect, kRefused, kReset, kTimeout, kWrongReply };
const char* failure_name(EchoFailure failure);

struct EchoResult {
    bool ok = false;
    std::string reply;  // without the newline
    std::string error;  // "connect: ECONNREFUSED", "read: timeout", ...
    EchoFailure failure = EchoFailure::kNone;
};

// Connects (from `source` when given: an address, and a port or 0), sends `line` and a
// newline, half-closes, and reads the reply until the server closes. Every step is bounded
// by `timeout`.
EchoResult echo_once(const Endpoint& target, const std::string& line,
                     std::chrono::milliseconds timeout = std::chrono::seconds(3), const Endpoint* source = nullptr);

// A connection kept open, exchanging one line at a time.
class EchoConnection {
   public:
    // Connects within `timeout`; on failure the result says why.
    static EchoConnection open(const Endpoint& target, std::chrono::milliseconds timeout, EchoResult* failure);
    bool connected() const { return fd_.valid(); }
    // Sends `line` and reads one reply line.
    EchoResult exchange(const std::string& line, std::chrono::milliseconds timeout);

   private:
    Fd fd_;
    std::string pending_;
};

}  // namespace tcpshift
