// Which connections are closed on purpose, without root: the ones past their service's
// maxConnectionDuration or idleTimeout (with jitter), and a rebalance's choice, which never
// takes a connection from a backend at or under its share.
#include "apply/closing.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <map>
#include <set>
#include <string>

namespace tcpshift {
namespace {

constexpr uint64_t kSecond = 1000000000ull;

Endpoint v4(uint16_t port) {
    auto e = parse_endpoint("127.0.0.1:" + std::to_string(port));
    return *e;
}

// A service (id 3) with one backend per subset, ids 10, 11, ...; each subset's share as given.
PlanService service_of(const std::vector<double>& shares) {
    PlanService svc{.name = "tcp-echo", .id = 3};
    for (size_t i = 0; i < shares.size(); ++i) {
        const uint32_t id = static_cast<uint32_t>(10 + i);
        svc.subsets.push_back({.name = "v" + std::to_string(i + 1),
                               .share = shares[i],
                               .backends = {{.id = id, .address = v4(static_cast<uint16_t>(9001 + i)), .share = shares[i]}}});
    }
    return svc;
}

// `counts[i]` connections on backend 10 + i of service 3, cookies numbered from 1.
std::vector<LiveConnection> connections(const std::vector<size_t>& counts) {
    std::vector<LiveConnection> out;
    uint64_t cookie = 1;
    for (size_t i = 0; i < counts.size(); ++i)
        for (size_t n = 0; n < counts[i]; ++n)
            out.push_back({.cookie = cookie,
                           .service_id = 3,
                           .backend_id = static_cast<uint32_t>(10 + i),
                           .established_ns = cookie * kSecond,
                           .idle_ms = static_cast<uint32_t>(cookie % 7),
                           .family = AF_INET}),
                ++cookie;
    return out;
}

std::map<uint32_t, size_t> closed_per_backend(const RebalanceChoice& choice) {
    std::map<uint32_t, size_t> out;
    for (const auto& c : choice.to_close) ++out[c.backend_id];
    return out;
}

TEST(Rebalance, ClosesOnlyTheExcessOfBackendsAboveTheirShare) {
    struct Case {
        std::string desc;
        std::vector<double> shares;
        std::vector<size_t> live;
        size_t budget;
        std::map<uint32_t, size_t> want;  // backend id -> connections closed
    } cases[] = {
        {.desc = "all on v1, shifted to 50/50", .shares = {0.5, 0.5}, .live = {100, 0}, .budget = 1000,
         .want = {{10, 50}}},
        {.desc = "already at the weights", .shares = {0.5, 0.5}, .live = {50, 50}, .budget = 1000, .want = {}},
        {.desc = "v2 under, v1 over by one", .shares = {0.5, 0.5}, .live = {51, 49}, .budget = 1000,
         .want = {{10, 1}}},
        {.desc = "the budget caps it", .shares = {0.5, 0.5}, .live = {100, 0}, .budget = 7, .want = {{10, 7}}},
        {.desc = "a zero budget closes nothing", .shares = {0.5, 0.5}, .live = {100, 0}, .budget = 0, .want = {}},
        {.desc = "two over, one under: each loses its own excess", .shares = {0.2, 0.2, 0.6},
         .live = {40, 40, 20}, .budget = 1000, .want = {{10, 20}, {11, 20}}},
        {.desc = "a small budget spreads over the backends above", .shares = {0.2, 0.2, 0.6},
         .live = {40, 40, 20}, .budget = 4, .want = {{10, 2}, {11, 2}}},
        {.desc = "weight 0 loses all", .shares = {1.0, 0.0}, .live = {30, 12}, .budget = 1000, .want = {{11, 12}}},
        {.desc = "no connections", .shares = {0.5, 0.5}, .live = {0, 0}, .budget = 1000, .want = {}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        const PlanService svc = service_of(c.shares);
        const RebalanceChoice choice = choose_rebalance(svc, connections(c.live), c.budget);
        EXPECT_EQ(closed_per_backend(choice), c.want);
        // Never one on a backend at or under its target.
        for (const auto& conn : choice.to_close) {
            const BackendBalance& b = choice.backends[conn.backend_id - 10];
            EXPECT_GT(b.live, b.target) << "closed a connection of backend " << b.id << " at or under its target";
        }
        std::set<uint64_t> cookies;
        for (const auto& conn : choice.to_close) cookies.insert(conn.cookie);
        EXPECT_EQ(cookies.size(), choice.to_close.size()) << "a connection chosen twice";
    }
}

TEST(Rebalance, TheFloorKeepsTargetsWhileClosedClientsReconnect) {
    // 50 of 100 closed and not yet back: v1 50, v2 0. On 50 live, v1's target would be 25 and
    // a round would close 25 more; on the floor of 100 it is 50, and nothing is closed.
    const PlanService svc = service_of({0.5, 0.5});
    EXPECT_EQ(choose_rebalance(svc, connections({50, 0}), 1000).to_close.size(), 25u) << "the control: no floor";
    EXPECT_TRUE(choose_rebalance(svc, connections({50, 0}), 1000, {100, 0}).to_close.empty());
}

TEST(Rebalance, TheLongestIdleGoFirstAndOtherServicesAreLeftAlone) {
    const PlanService svc = service_of({0.5, 0.5});
    auto live = connections({4, 0});
    live[2].idle_ms = 90000;
    live[0].idle_ms = 60000;
    LiveConnection other = live[1];
    other.cookie = 99;
    other.service_id = 4;  // another service's connection on the same backend
    live.push_back(other);
    const RebalanceChoice choice = choose_rebalance(svc, live, 1000);
    ASSERT_EQ(choice.to_close.size(), 2u);
    EXPECT_EQ(choice.to_close[0].cookie, live[2].cookie);
    EXPECT_EQ(choice.to_close[1].cookie, live[0].cookie);
    EXPECT_EQ(choice.backends[0].live, 4u) << "the other service's connection is not counted";
}

TEST(Lifetime, JitterStretchesTheLimitByAtMostTenPercentAndVaries) {
    std::set<uint64_t> seen;
    for (uint64_t cookie = 1; cookie <= 1000; ++cookie) {
        const uint64_t ms = jittered_ms(2000, cookie);
        EXPECT_GE(ms, 2000u);
        EXPECT_LE(ms, 2200u);
        EXPECT_EQ(ms, jittered_ms(2000, cookie)) << "the same connection keeps its deadline";
        seen.insert(ms);
    }
    EXPECT_GT(seen.size(), 100u) << "the deadlines are spread";
}

TEST(Lifetime, ExpiredByAgeOrIdlenessOfTheirOwnService) {
    Plan plan;
    plan.services.push_back(service_of({1.0}));
    plan.services[0].lifetime = {.max_duration_ms = 2000, .idle_timeout_ms = 5000};
    PlanService unlimited = service_of({1.0});
    unlimited.id = 4;
    plan.services.push_back(unlimited);
    const uint64_t now = 100 * kSecond;
    struct Case {
        std::string desc;
        uint32_t service_id;
        uint64_t age_ms;
        uint32_t idle_ms;
        bool expired;
    } cases[] = {
        {"young and busy", 3, 1000, 0, false},
        {"just under the bound", 3, 1999, 0, false},
        {"past the bound and its jitter", 3, 2201, 0, true},
        {"idle past the timeout and its jitter", 3, 1000, 5501, true},
        {"idle under the timeout", 3, 1000, 4999, false},
        {"old, of a service with no limit", 4, 100000, 100000, false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        const LiveConnection conn{.cookie = 42,
                                  .service_id = c.service_id,
                                  .backend_id = 10,
                                  .established_ns = now - c.age_ms * 1000000,
                                  .idle_ms = c.idle_ms};
        EXPECT_EQ(expired_connections(plan, {conn}, now).size(), c.expired ? 1u : 0u);
    }
}

}  // namespace
}  // namespace tcpshift
