// The agent's active health check of connect-time backends: no listener of the namespace
// stands for them, so the agent connects to each, from the frontends' namespace, every
// interval, and writes the answer where connect() reads it (record_probe). A backend that does
// not answer takes no new connection until a probe answers again, even with no client traffic
// to fail on it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/log.h"
#include "base/endpoint.h"
#include "compile/plan.h"
#include "dataplane/handle.h"

namespace tcpshift {

// `--probe-interval`: a duration ("5s", "500ms"); "0" disables the probe. Between 100 ms and
// 1 h otherwise.
Result<std::chrono::milliseconds> parse_probe_interval(const std::string& text);

// How long one probe waits for its handshake: a second, or the interval when that is shorter.
std::chrono::milliseconds probe_timeout(std::chrono::milliseconds interval);

// A connect-time backend to probe, once per id, named by its first service and subset.
struct ProbeTarget {
    uint32_t id = 0;
    Endpoint address;
    std::string name;  // "tcp-echo/v3"
};
std::vector<ProbeTarget> probe_targets(const Plan& plan);

struct ProbeAnswer {
    bool answered = false;
    std::string error;  // why not: "connect: ECONNREFUSED", "no answer within 1000 ms"
};
// Connects to every address at once (non-blocking, in batches that bound the open sockets),
// in the calling thread's namespace, each within `timeout`, and closes each connection at
// once. Parallel to `addresses`.
std::vector<ProbeAnswer> probe_addresses(const std::vector<Endpoint>& addresses, std::chrono::milliseconds timeout);

// Probes on a thread of its own, so that a round (up to probe_timeout() per batch) never holds
// up the agent's reloads and adoption. The thread starts in the namespace of the thread that
// calls start(): the frontends' namespace, where the probe must connect from.
class BackendProber {
   public:
    // The plan stored now, as the agent's view keeps it.
    using PlanSource = std::function<Result<std::shared_ptr<const Plan>>(Dataplane&)>;

    BackendProber(std::chrono::milliseconds interval, PlanSource plan, Log& log)
        : interval_(interval), plan_(std::move(plan)), log_(log) {}
    ~BackendProber() { stop(); }
    BackendProber(const BackendProber&) = delete;
    BackendProber& operator=(const BackendProber&) = delete;

    // Starts the rounds, the first one interval from now; nothing when the interval is 0.
    void start();
    // Ends the current round's wait and joins the thread.
    void stop();

   private:
    void run();
    void round();
    // Writes the answers for the targets the plan stored now still names the same way, and
    // logs the backends that went down or came back.
    void record(const std::vector<ProbeTarget>& targets, const std::vector<ProbeAnswer>& answers);

    std::chrono::milliseconds interval_;
    PlanSource plan_;
    Log& log_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::map<uint32_t, bool> down_;  // backend id -> its last probe failed (for the log)
};

}  // namespace tcpshift
