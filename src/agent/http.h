// The agent's HTTP endpoint: /metrics and /healthz on one address of the caller's network
// namespace, served by cpp-httplib on a thread of its own.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/endpoint.h"
#include "base/error.h"

namespace tcpshift {

struct MetricsHandlers {
    std::function<Result<std::string>()> metrics;  // the Prometheus text; an error answers 500
    std::function<bool()> ready;                   // /healthz answers 200 when true, else 503
};

class MetricsServer {
   public:
    // Listens on `address` in the calling thread's network namespace. The address is the
    // server's alone: cpp-httplib sets SO_REUSEPORT by default, with which a second agent
    // would bind the same address and silently take part of the scrapes; here its bind fails.
    static Result<MetricsServer> bind(const Endpoint& address);

    MetricsServer(MetricsServer&&) noexcept;
    MetricsServer& operator=(MetricsServer&&) noexcept;
    ~MetricsServer();  // stop()

    // Answers requests until stop().
    void serve(MetricsHandlers handlers);

    // Stops listening and ends every open connection, idle keep-alive ones included, so the
    // caller is not held for the server's keep-alive timeout (5 s). Returns when the serving
    // thread has ended.
    void stop();

   private:
    struct Impl;
    MetricsServer();
    std::unique_ptr<Impl> impl_;
};

}  // namespace tcpshift
