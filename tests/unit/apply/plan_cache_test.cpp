// The plan cache without root: what a read-only verb reads back is the compiled plan, field by
// field, but for the slots; and a cache of another set, of another format or damaged is no plan.
#include "apply/plan_cache.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "apply/transaction.h"

namespace tcpshift {
namespace {

namespace fs = std::filesystem;

// Two services whose every policy differs from its default, with IPv4 and IPv6 frontends and
// backends: a field the cache forgets shows as a difference.
constexpr const char* kRich = R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: rich}
spec:
  listen: ["127.0.0.1:31400", "[::1]:31400"]
  takeover: true
  outlierDetection: {consecutiveErrors: 3, baseEjectionTime: 7s, maxEjectionPercent: 40, minHealthPercent: 20}
  rebalance: {rate: 70, max: 9}
  policy:
    loadBalancer:
      consistentHash: {useSourceIp: true, maglev: {tableSize: 251}}
    connectionPool:
      tcp:
        maxConnections: 33
        maxConnectionDuration: 1h
        idleTimeout: 5m
        tcpKeepalive: {time: 60s, interval: 10s, probes: 4}
  subsets:
  - name: v1
    weight: 30
    backends: ["127.0.0.1:9001", "[::1]:9001"]
  - name: v2
    weight: 70
    backends: ["127.0.0.1:9002", "127.0.0.1:9003", "[::1]:9002"]
---
apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: cycle}
spec:
  listen: ["0.0.0.0:31401"]
  policy:
    loadBalancer:
      simple: ROUND_ROBIN
      warmup: {duration: 30s, minimumPercent: 25, aggression: 2}
  subsets:
  - {name: a, weight: 1, backends: ["127.0.0.1:9004"]}
  - {name: b, weight: 0, backends: ["192.0.2.1:9005"]}
)";

class PlanCacheTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/tcpshift-plan-cache-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        auto resources = parse_resources(kRich, "rich.yaml", "default", nullptr);
        ASSERT_TRUE(resources) << resources.error().message;
        auto plan = compile_resources(*resources, IdAssignment{});
        ASSERT_TRUE(plan) << plan.error().message;
        plan_ = std::move(*plan);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string path() const { return dir_ + "/" + kPlanCacheFileName; }
    Result<void> save(uint64_t serial, uint32_t attachment = 40) const {
        return save_plan_cache_at(dir_, PlanKey{serial, attachment}, plan_, routes_);
    }

    std::string dir_;
    Plan plan_;
    const std::vector<Endpoint> routes_ = {*parse_address("10.99.0.1", 0), *parse_address("fd00::1", 0)};
};

void expect_same(const SourceRef& a, const SourceRef& b, const std::string& what) {
    EXPECT_EQ(a.file, b.file) << what;
    EXPECT_EQ(a.line, b.line) << what;
}

// Every field of the policies, their places included (their operator== leaves those out).
void expect_same_policies(const PlanService& a, const PlanService& b) {
    EXPECT_TRUE(a.outlier == b.outlier);
    expect_same(a.outlier.where, b.outlier.where, "outlier");
    EXPECT_TRUE(a.balance == b.balance);
    expect_same(a.balance.where, b.balance.where, "balance");
    expect_same(a.balance.warmup.where, b.balance.warmup.where, "warmup");
    EXPECT_TRUE(a.keepalive == b.keepalive);
    expect_same(a.keepalive.where, b.keepalive.where, "keepalive");
    EXPECT_TRUE(a.cap == b.cap);
    expect_same(a.cap.where, b.cap.where, "cap");
    EXPECT_TRUE(a.lifetime == b.lifetime);
    expect_same(a.lifetime.where, b.lifetime.where, "lifetime");
    expect_same(a.lifetime.duration_where, b.lifetime.duration_where, "lifetime duration");
    expect_same(a.lifetime.idle_where, b.lifetime.idle_where, "lifetime idle");
    EXPECT_TRUE(a.rebalance == b.rebalance);
    expect_same(a.rebalance.where, b.rebalance.where, "rebalance");
}

void expect_same_subsets(const PlanService& a, const PlanService& b) {
    ASSERT_EQ(a.subsets.size(), b.subsets.size());
    for (size_t i = 0; i < a.subsets.size(); ++i) {
        const PlanSubset &x = a.subsets[i], &y = b.subsets[i];
        EXPECT_EQ(x.name, y.name);
        EXPECT_EQ(x.weight, y.weight);
        EXPECT_EQ(x.share, y.share);
        expect_same(x.where, y.where, "subset " + x.name);
        expect_same(x.weight_where, y.weight_where, "subset weight " + x.name);
        EXPECT_EQ(x.weight_path, y.weight_path);
        ASSERT_EQ(x.backends.size(), y.backends.size());
        for (size_t k = 0; k < x.backends.size(); ++k) {
            EXPECT_EQ(x.backends[k].id, y.backends[k].id);
            EXPECT_EQ(x.backends[k].address, y.backends[k].address);
            EXPECT_EQ(x.backends[k].share, y.backends[k].share);
            EXPECT_EQ(x.backends[k].remote, y.backends[k].remote);
            expect_same(x.backends[k].where, y.backends[k].where, "backend " + x.backends[k].address.str());
        }
    }
}

// `read` is `compiled` read back: the same in every field, the tables without their slots.
void expect_read_back(const Plan& compiled, const Plan& read) {
    EXPECT_EQ(read.ids.services, compiled.ids.services);
    EXPECT_EQ(read.ids.backends, compiled.ids.backends);
    ASSERT_EQ(read.services.size(), compiled.services.size());
    for (size_t i = 0; i < compiled.services.size(); ++i) {
        const PlanService &a = compiled.services[i], &b = read.services[i];
        SCOPED_TRACE(a.name);
        EXPECT_EQ(a.name, b.name);
        EXPECT_EQ(a.id, b.id);
        EXPECT_EQ(a.affinity, b.affinity);
        EXPECT_EQ(a.takeover, b.takeover);
        EXPECT_EQ(a.frontends, b.frontends);
        ASSERT_EQ(a.frontends_where.size(), b.frontends_where.size());
        for (size_t k = 0; k < a.frontends_where.size(); ++k) expect_same(a.frontends_where[k], b.frontends_where[k], "frontend");
        expect_same(a.affinity_where, b.affinity_where, "affinity");
        EXPECT_EQ(a.local_addresses, b.local_addresses);
        expect_same(a.where, b.where, "service");
        EXPECT_EQ(a.origin, b.origin);
        expect_same_policies(a, b);
        expect_same_subsets(a, b);
        for (size_t f = 0; f < a.tables.size(); ++f) {
            EXPECT_EQ(a.tables[f].weighted_backends, b.tables[f].weighted_backends);
            EXPECT_EQ(a.tables[f].group_first, b.tables[f].group_first);
            EXPECT_EQ(a.tables[f].group_size, b.tables[f].group_size);
            EXPECT_EQ(a.tables[f].slot_count(), b.tables[f].slot_count());
            EXPECT_TRUE(b.tables[f].slots.empty()) << "the slots stay out of the cache";
            EXPECT_EQ(b.tables[f].elided(), !a.tables[f].slots.empty());
        }
    }
}

TEST_F(PlanCacheTest, ReadBackIsTheCompiledPlanButForTheSlots) {
    // The fixture sets what it means to: a policy left at its default would prove nothing.
    ASSERT_EQ(plan_.services.size(), 2u);
    const PlanService& rich = plan_.services[0];
    ASSERT_EQ(rich.tables[0].slots.size(), 251u);
    ASSERT_EQ(rich.tables[1].slots.size(), 251u);
    ASSERT_TRUE(rich.takeover);
    ASSERT_EQ(rich.affinity, Affinity::kSourceIp);
    ASSERT_TRUE(rich.rebalance.enabled);
    ASSERT_TRUE(rich.keepalive.enabled);
    ASSERT_EQ(rich.cap.max_connections, 33u);
    ASSERT_TRUE(rich.lifetime.idle_timeout_ms && rich.lifetime.max_duration_ms);
    ASSERT_TRUE(rich.outlier.written());
    ASSERT_EQ(plan_.services[1].balance.mode, Balance::kRoundRobin);
    ASSERT_TRUE(plan_.services[1].balance.warmup.duration_ms);
    ASSERT_TRUE(plan_.services[1].subsets[1].backends[0].remote) << "192.0.2.1 is no address of this host";

    ASSERT_TRUE(save(7));
    const auto read = load_plan_cache_at(dir_, {7, 40});
    ASSERT_TRUE(read);
    EXPECT_EQ(read->key, (PlanKey{7, 40}));
    EXPECT_EQ(read->local_routes, routes_);
    expect_read_back(plan_, read->plan);
}

TEST_F(PlanCacheTest, ACacheOfAnotherSetIsNoPlan) {
    ASSERT_TRUE(save(7));
    EXPECT_FALSE(load_plan_cache_at(dir_, {8, 40})) << "a later set";
    EXPECT_FALSE(load_plan_cache_at(dir_, {6, 40})) << "an earlier one (a rolled back commit)";
    EXPECT_FALSE(load_plan_cache_at(dir_, {7, 41})) << "the same serial of another attach";
    EXPECT_TRUE(load_plan_cache_at(dir_, {7, 40}));
}

TEST_F(PlanCacheTest, AnAbsentOrDamagedCacheIsNoPlan) {
    EXPECT_FALSE(load_plan_cache_at(dir_, {7, 40})) << "absent";
    ASSERT_TRUE(save(7));
    const auto whole = fs::file_size(path());
    fs::resize_file(path(), whole / 2);
    EXPECT_FALSE(load_plan_cache_at(dir_, {7, 40})) << "cut short";
    std::ofstream(path(), std::ios::trunc) << "{\"format\": 1, \"serial\": 7}";
    EXPECT_FALSE(load_plan_cache_at(dir_, {7, 40})) << "not what a writer wrote";
    fs::remove(path());
    fs::create_directory(path());
    EXPECT_FALSE(load_plan_cache_at(dir_, {7, 40})) << "a directory";
    fs::remove(path());
    ASSERT_EQ(::mkfifo(path().c_str(), 0600), 0);
    EXPECT_FALSE(load_plan_cache_at(dir_, {7, 40})) << "a FIFO, read without blocking";
}

// What a transaction does with the plan read back: compiles the next set reusing it, so that
// unchanged tables stay without slots (the kernel holds them) and a changed one is built; and
// fill_slots() builds a table that is written after all exactly as a compile would.
TEST_F(PlanCacheTest, TablesReadBackStayUnbuiltUntilWrittenAndAreThenTheCompiledOnes) {
    ASSERT_TRUE(save(1));
    auto read = load_plan_cache_at(dir_, {1, 40});
    ASSERT_TRUE(read);
    Plan& before = read->plan;

    std::string text = kRich;
    const auto at = text.find("weight: 30");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 10, "weight: 45");
    auto resources = parse_resources(text, "rich.yaml", "default", nullptr);
    ASSERT_TRUE(resources);
    auto fresh = compile_resources(*resources, before.ids);
    ASSERT_TRUE(fresh) << fresh.error().message;
    auto next = compile_resources(*resources, before.ids, nullptr, default_limits(), &before);
    ASSERT_TRUE(next) << next.error().message;

    const PlanService &shifted = next->services[0], &kept = next->services[1];
    for (size_t f = 0; f < 2; ++f) {
        EXPECT_FALSE(shifted.tables[f].elided()) << "its weights changed: built";
        EXPECT_EQ(shifted.tables[f].slots, fresh->services[0].tables[f].slots);
        EXPECT_NE(shifted.tables[f].slots, plan_.services[0].tables[f].slots) << "the shift moves slots";
    }
    EXPECT_TRUE(kept.tables[0].elided()) << "unchanged: taken over without slots";
    EXPECT_EQ(kept.tables[0].slot_count(), plan_.services[1].tables[0].slots.size());

    for (size_t i = 0; i < before.services.size(); ++i) {
        PlanService filled = before.services[i];
        ASSERT_TRUE(fill_slots(filled, default_limits()));
        for (size_t f = 0; f < 2; ++f) {
            EXPECT_FALSE(filled.tables[f].elided());
            EXPECT_EQ(filled.tables[f].slots, plan_.services[i].tables[f].slots) << filled.name << " family " << f;
        }
    }
}

// A table read back that its service's own weights do not build is refused, not installed.
TEST_F(PlanCacheTest, ATableReadBackThatTheServiceDoesNotBuildIsRefused) {
    ASSERT_TRUE(save(1));
    auto read = load_plan_cache_at(dir_, {1, 40});
    ASSERT_TRUE(read);
    PlanService svc = read->plan.services[0];
    svc.tables[0].elided_slots = 257;
    auto filled = fill_slots(svc, default_limits());
    ASSERT_FALSE(filled);
    EXPECT_NE(filled.error().message.find("service rich: its IPv4 table built again differs"), std::string::npos)
        << filled.error().message;
}

}  // namespace
}  // namespace tcpshift
