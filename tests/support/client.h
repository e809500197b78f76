// What the tests count with the tcp-echo client (tcpshift/echo_client.h), and small helpers
// for HTTP and Prometheus text. All work in the network namespace of the calling thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "echo_client.h"
#include "base/endpoint.h"

namespace tcpshift::testing {

using tcpshift::echo_once;
using tcpshift::EchoResult;

// Counts n connections by the first word of the reply ("one", "two"), and the failures.
struct Tally {
    std::map<std::string, uint64_t> by_prefix;
    uint64_t failures = 0;
    std::vector<std::string> first_errors;  // up to 5

    uint64_t operator[](const std::string& prefix) const {
        auto it = by_prefix.find(prefix);
        return it == by_prefix.end() ? 0 : it->second;
    }
    std::string str() const;
};
Tally tally(const Endpoint& target, size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(3));
// The same from n distinct IPv4 loopback sources (127.1.0.1, 127.1.0.2, ...), so each flow is
// an independent draw of the hash, not one of the few 4-tuples a single source reuses.
Tally tally_from_many_sources(const Endpoint& target, size_t n,
                              std::chrono::milliseconds timeout = std::chrono::seconds(3));

Endpoint endpoint(const std::string& text);  // parse_endpoint that aborts on bad test input

// GET http://127.0.0.1:PORT/PATH from the calling thread's namespace; empty on failure.
struct HttpReply {
    int status = 0;
    std::string body;
};
HttpReply http_get(int port, const std::string& path);

// The value of one series in Prometheus text, e.g. `tcpshift_weight{service="a",subset="v1"}`;
// -1 when the series is absent.
double metric_value(const std::string& text, const std::string& series);

// A free TCP port on 127.0.0.1 of the calling thread's namespace.
int free_port();

}  // namespace tcpshift::testing
