#include "agent/probe.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "base/fd.h"
#include "config/duration.h"
#include "dataplane/backend_health.h"

namespace tcpshift {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kMinInterval{100};
constexpr std::chrono::milliseconds kMaxInterval{3600 * 1000};
constexpr std::chrono::milliseconds kMaxTimeout{1000};
// Sockets open at once: well under the default RLIMIT_NOFILE of 1024, beside the agent's own.
constexpr size_t kBatch = 256;
// How long a round waits for a writer (an apply, `tcpshift set`) before it records its answers.
constexpr std::chrono::milliseconds kLockPatience{1000};

std::string errno_name(int e) {
    const char* name = strerrorname_np(e);
    return name ? name : std::to_string(e);
}

// A connect under way: the socket, or the answer when connect() gave it at once.
struct Attempt {
    Fd fd;
    ProbeAnswer answer;
    bool done = false;
};

Attempt start_connect(const Endpoint& address) {
    Attempt a;
    a.fd = Fd(::socket(address.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!a.fd) {
        a.answer.error = "socket: " + errno_name(errno);
        a.done = true;
        return a;
    }
    sockaddr_storage ss;
    const socklen_t len = to_sockaddr(address, &ss);
    if (::connect(a.fd.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0) {
        a.answer.answered = true;
        a.done = true;
    } else if (errno != EINPROGRESS) {
        a.answer.error = "connect: " + errno_name(errno);
        a.done = true;
    }
    return a;
}

// Waits until every attempt is done or the deadline passes; those still pending did not answer.
void finish_connects(std::vector<Attempt>& attempts, Clock::time_point deadline, std::chrono::milliseconds timeout) {
    for (;;) {
        std::vector<pollfd> fds;
        std::vector<Attempt*> pending;
        for (auto& a : attempts)
            if (!a.done) {
                fds.push_back({a.fd.get(), POLLOUT, 0});
                pending.push_back(&a);
            }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (pending.empty()) return;
        if (left.count() <= 0 || ::poll(fds.data(), fds.size(), static_cast<int>(left.count())) < 0) break;
        for (size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].revents == 0) continue;
            int err = 0;
            socklen_t err_len = sizeof(err);
            ::getsockopt(fds[i].fd, SOL_SOCKET, SO_ERROR, &err, &err_len);
            pending[i]->done = true;
            pending[i]->answer = err == 0 ? ProbeAnswer{.answered = true}
                                          : ProbeAnswer{.error = "connect: " + errno_name(err)};
        }
    }
    for (auto& a : attempts)
        if (!a.done) a.answer.error = "no answer within " + std::to_string(timeout.count()) + " ms";
}

}  // namespace

Result<std::chrono::milliseconds> parse_probe_interval(const std::string& text) {
    auto ms = parse_duration_ms(text);
    if (!ms) return fail(config_error("--probe-interval: " + ms.error().message));
    const std::chrono::milliseconds interval(*ms);
    if (interval.count() != 0 && (interval < kMinInterval || interval > kMaxInterval))
        return fail(config_error("--probe-interval: " + text + " is out of range: 0 (off) or " +
                                 duration_str(kMinInterval.count()) + " to " + duration_str(kMaxInterval.count())));
    return interval;
}

std::chrono::milliseconds probe_timeout(std::chrono::milliseconds interval) { return std::min(interval, kMaxTimeout); }

std::vector<ProbeTarget> probe_targets(const Plan& plan) {
    std::vector<ProbeTarget> out;
    std::set<uint32_t> seen;
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends)
                if (b.remote && seen.insert(b.id).second)
                    out.push_back({.id = b.id, .address = b.address, .name = svc.name + "/" + subset.name});
    return out;
}

std::vector<ProbeAnswer> probe_addresses(const std::vector<Endpoint>& addresses, std::chrono::milliseconds timeout) {
    std::vector<ProbeAnswer> out;
    for (size_t first = 0; first < addresses.size(); first += kBatch) {
        const size_t end = std::min(addresses.size(), first + kBatch);
        const auto deadline = Clock::now() + timeout;
        std::vector<Attempt> attempts;
        for (size_t i = first; i < end; ++i) attempts.push_back(start_connect(addresses[i]));
        finish_connects(attempts, deadline, timeout);
        for (auto& a : attempts) out.push_back(std::move(a.answer));
    }
    return out;
}

void BackendProber::start() {
    if (interval_.count() == 0 || thread_.joinable()) return;
    thread_ = std::thread([this] { run(); });
}

void BackendProber::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void BackendProber::run() {
    auto next = Clock::now() + interval_;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            if (wake_.wait_until(lock, next, [this] { return stopping_; })) return;
        }
        // A round that overran its interval is followed by the next at once, not by a burst.
        next = std::max(next + interval_, Clock::now());
        round();
    }
}

void BackendProber::round() {
    std::vector<ProbeTarget> targets;
    {
        auto dataplane = Dataplane::open("", Dataplane::Access::kUnlocked);
        if (!dataplane || !dataplane->attached()) return;
        auto plan = plan_(*dataplane);
        if (!plan) {
            log_("warn", "probe: " + plan.error().message);
            return;
        }
        targets = probe_targets(**plan);
    }
    if (targets.empty()) return;
    std::vector<Endpoint> addresses;
    for (const auto& t : targets) addresses.push_back(t.address);
    record(targets, probe_addresses(addresses, probe_timeout(interval_)));
}

void BackendProber::record(const std::vector<ProbeTarget>& targets, const std::vector<ProbeAnswer>& answers) {
    // Under the pin lock, against the plan stored now: an apply may have given an id to
    // another address while the probes were out, and its health must not be this one's.
    auto dataplane = Dataplane::open("", Dataplane::Access::kExclusive, kLockPatience);
    if (!dataplane || !dataplane->attached()) return;
    auto plan = plan_(*dataplane);
    auto maps = dataplane->writable_maps();
    if (!plan || !maps) return;
    auto health = backend_health(**maps, **plan);
    if (!health) {
        log_("warn", "probe: " + health.error().message);
        return;
    }
    std::map<uint32_t, Endpoint> now;
    for (const auto& t : probe_targets(**plan)) now.emplace(t.id, t.address);
    std::map<uint32_t, bool> down;
    for (size_t i = 0; i < targets.size(); ++i) {
        const ProbeTarget& t = targets[i];
        const ProbeAnswer& a = answers[i];
        auto it = now.find(t.id);
        auto h = health->find(t.id);
        if (it == now.end() || it->second != t.address || h == health->end()) continue;
        down[t.id] = !a.answered;
        // Written only on a change, so that sock_ops' counters are rarely raced (record_probe).
        const bool changed = a.answered ? (h->second.probe_down || h->second.ejected_ms > 0 || h->second.failures > 0)
                                        : !h->second.probe_down;
        if (changed) {
            if (auto ok = record_probe(**maps, t.id, a.answered); !ok) log_("warn", "probe: " + ok.error().message);
        }
        const bool was_down = down_.count(t.id) && down_.at(t.id);
        if (!a.answered && !was_down)
            log_("warn", "backend " + t.address.str() + " (" + t.name + ") is down: " + a.error +
                             "; it takes no new connection until a probe answers");
        if (a.answered && was_down)
            log_("info", "backend " + t.address.str() + " (" + t.name + ") answers again: it takes new connections");
    }
    down_ = std::move(down);
}

}  // namespace tcpshift
