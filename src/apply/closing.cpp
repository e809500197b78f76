#include "apply/closing.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <random>
#include <thread>

#include "config/duration.h"

namespace tcpshift {

namespace {

// splitmix64: a cookie's bits spread evenly, so consecutive cookies get unrelated jitter.
uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

std::string seconds_str(uint64_t ms) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f s", static_cast<double>(ms) / 1000.0);
    return buf;
}

std::string limit_str(uint64_t limit_ms, uint64_t jittered) {
    return duration_str(limit_ms) + " (+" + std::to_string((jittered - limit_ms) * 100 / limit_ms) + "%)";
}

}  // namespace

uint64_t jittered_ms(uint64_t limit_ms, uint64_t cookie) {
    const uint64_t spread = limit_ms * kLifetimeJitterPercent / 100;
    return limit_ms + (spread ? mix(cookie) % (spread + 1) : 0);
}

std::vector<ExpiredConnection> expired_connections(const Plan& plan, const std::vector<LiveConnection>& live,
                                                   uint64_t now_ns) {
    std::map<uint32_t, const PlanService*> by_id;
    for (const auto& svc : plan.services)
        if (svc.lifetime.any()) by_id[svc.id] = &svc;
    std::vector<ExpiredConnection> out;
    for (const auto& c : live) {
        auto it = by_id.find(c.service_id);
        if (it == by_id.end()) continue;
        const LifetimePolicy& policy = it->second->lifetime;
        if (policy.max_duration_ms && c.established_ns && now_ns > c.established_ns) {
            const uint64_t age_ms = (now_ns - c.established_ns) / 1000000;
            const uint64_t limit = jittered_ms(policy.max_duration_ms, c.cookie);
            if (age_ms >= limit) {
                out.push_back({c, it->second->name,
                               "open " + seconds_str(age_ms) + ", maxConnectionDuration " +
                                   limit_str(policy.max_duration_ms, limit)});
                continue;
            }
        }
        if (policy.idle_timeout_ms) {
            // Another jitter than the duration's: the cookie's bits, turned.
            const uint64_t limit = jittered_ms(policy.idle_timeout_ms, ~c.cookie);
            if (c.idle_ms >= limit)
                out.push_back({c, it->second->name,
                               "idle " + seconds_str(c.idle_ms) + ", idleTimeout " +
                                   limit_str(policy.idle_timeout_ms, limit)});
        }
    }
    return out;
}

RebalanceChoice choose_rebalance(const PlanService& service, const std::vector<LiveConnection>& live, size_t budget,
                                 const std::array<size_t, 2>& floor_total) {
    RebalanceChoice out;
    std::map<uint32_t, size_t> index;  // backend id -> its entry in out.backends
    for (const auto& subset : service.subsets)
        for (const auto& b : subset.backends) {
            index[b.id] = out.backends.size();
            out.backends.push_back({.id = b.id, .subset = subset.name, .address = b.address, .share = b.share});
        }
    std::map<uint32_t, std::vector<LiveConnection>> on;  // backend id -> its connections
    std::array<size_t, 2> total = floor_total;
    std::array<size_t, 2> counted = {0, 0};
    for (const auto& c : live) {
        if (c.service_id != service.id) continue;
        auto it = index.find(c.backend_id);
        if (it == index.end()) continue;  // an id this plan no longer names
        ++out.backends[it->second].live;
        ++counted[family_index(out.backends[it->second].address.family)];
        on[c.backend_id].push_back(c);
    }
    for (size_t f = 0; f < 2; ++f) total[f] = std::max(total[f], counted[f]);
    std::vector<std::vector<LiveConnection>> queues;
    for (auto& b : out.backends) {
        const size_t family_total = total[family_index(b.address.family)];
        b.target = static_cast<size_t>(std::llround(b.share * static_cast<double>(family_total)));
        if (!b.excess()) continue;
        auto& conns = on[b.id];
        std::sort(conns.begin(), conns.end(), [](const LiveConnection& x, const LiveConnection& y) {
            if (x.idle_ms != y.idle_ms) return x.idle_ms > y.idle_ms;
            return x.established_ns < y.established_ns;
        });
        conns.resize(b.excess());
        queues.push_back(std::move(conns));
    }
    for (size_t turn = 0; out.to_close.size() < budget; ++turn) {
        bool took = false;
        for (const auto& q : queues)
            if (turn < q.size() && out.to_close.size() < budget) {
                out.to_close.push_back(q[turn]);
                took = true;
            }
        if (!took) break;
    }
    return out;
}

Result<RebalanceReport> run_rebalance(Dataplane& dataplane, const PlanService& service, const RebalanceOptions& options,
                                      const std::function<void(const std::string&)>& progress) {
    using Clock = std::chrono::steady_clock;
    auto maps = dataplane.maps();
    if (!maps) return fail(maps.error());
    RebalanceReport report{.path = destroy_path_name(destroy_path())};
    std::mt19937_64 random(std::random_device{}());
    std::uniform_int_distribution<int> tick_ms(50, 150);
    const auto start = Clock::now();
    auto last = start;
    double allowance = 0;  // connections the rate allows and no round has closed yet
    std::array<size_t, 2> floor_total = {0, 0};
    constexpr int kQuietRounds = 3;
    int quiet_rounds = 0;
    for (;;) {
        auto live = steered_connections((*maps)->connections);
        if (!live) return fail(live.error());
        const auto now = Clock::now();
        allowance = std::min(allowance + options.rate * std::chrono::duration<double>(now - last).count(),
                             std::max(1.0, options.rate / 10.0 * 1.5));  // no burst after a slow round
        last = now;
        const size_t left = options.max ? options.max - report.closed : SIZE_MAX;
        auto choice = choose_rebalance(service, *live, std::min<size_t>(left, static_cast<size_t>(allowance)),
                                       floor_total);
        if (report.rounds == 0) {
            report.before = choice.backends;
            // Nothing above its target at the start: nothing is waiting to reconnect either.
            if (std::none_of(choice.backends.begin(), choice.backends.end(),
                             [](const BackendBalance& b) { return b.excess() > 0; }))
                quiet_rounds = kQuietRounds - 1;
            for (const auto& b : choice.backends) floor_total[family_index(b.address.family)] += b.live;
        }
        report.after = choice.backends;
        const bool over = std::any_of(choice.backends.begin(), choice.backends.end(),
                                      [](const BackendBalance& b) { return b.excess() > 0; });
        report.converged = !over;
        ++report.rounds;
        // Balanced now, but clients reset in the last rounds may still be reconnecting, and
        // their new connections split by weight again: only rounds in a row with nothing
        // above its target, spanning a few hundred ms, end it.
        quiet_rounds = over ? 0 : quiet_rounds + 1;
        if (quiet_rounds >= kQuietRounds || left == 0 || now - start >= options.timeout) break;
        if (!choice.to_close.empty()) {
            auto closed = destroy_connections(choice.to_close);
            if (!closed) return fail(closed.error());
            report.closed += *closed;
            allowance -= static_cast<double>(choice.to_close.size());
            std::string line = "closed " + std::to_string(*closed) + " (" + std::to_string(report.closed) +
                               " so far):";
            for (const auto& b : choice.backends)
                line += " " + b.subset + "/" + b.address.str() + " " + std::to_string(b.live) + "/" +
                        std::to_string(b.target);
            progress(line);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(tick_ms(random)));
    }
    report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return report;
}

}  // namespace tcpshift
