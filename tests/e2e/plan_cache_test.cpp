// The plan cache beside the applied set, in a namespace: status and stats read the plan of the
// set the maps hold, never an older one; a change that reuses the tables of a plan read back
// installs exactly what a fresh compile would, verify says so, and traffic follows it.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "apply/plan_cache.h"
#include "client.h"
#include "lifecycle_fixture.h"
#include "report_json.h"

namespace tcpshift::testing {
namespace {

namespace fs = std::filesystem;

class PlanCacheTest : public LifecycleTest {
   protected:
    std::string cache() { return state_dir(netns_inode()) + "/" + kPlanCacheFileName; }
    nlohmann::json status() {
        const auto r = tcpshift_here({"status", "--json"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return nlohmann::json::parse(r.out);
    }
    void set(const std::string& weights) {
        const auto r = tcpshift_here({"set", "tcp-echo", weights});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    void expect_in_sync() {
        const auto r = tcpshift_here({"verify"});
        EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    }
};

// IPv4 and IPv6 clients, a hashing table of 251 slots: enough that a table built from other
// inputs than the compiled one differs in verify.
constexpr const char* kDualStack = R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata:
  name: tcp-echo
spec:
  listen: ["127.0.0.1:31400", "[::1]:31400"]
  policy:
    loadBalancer: {consistentHash: {maglev: {tableSize: 251}}}
  subsets:
  - name: v1
    weight: 50
    backends: ["127.0.0.1:9001", "[::1]:9001"]
  - name: v2
    weight: 50
    backends: ["127.0.0.1:9002", "[::1]:9002"]
)";

TEST_F(PlanCacheTest, StatusReadsThePlanOfTheSetTheMapsHoldAndNoOther) {
    Child v1 = start_echo(netns(), "[::]:9001", "one");
    Child v2 = start_echo(netns(), "[::]:9002", "two");
    apply(kDualStack);
    ASSERT_TRUE(fs::exists(cache())) << "apply writes the plan beside the applied set";
    set("v1=20");
    const nlohmann::json at20 = status();
    EXPECT_EQ(applied_weights(at20)["v1"], 20u);

    // Without the cache, status compiles the stored set: the same report.
    fs::copy_file(cache(), cache() + ".20");
    fs::remove(cache());
    EXPECT_EQ(status(), at20);

    // A cache of an earlier set is not read: status shows the set the maps hold.
    set("v1=70");
    EXPECT_EQ(applied_weights(status())["v1"], 70u);
    fs::copy_file(cache() + ".20", cache(), fs::copy_options::overwrite_existing);
    EXPECT_EQ(applied_weights(status())["v1"], 70u) << "a stale cache stood for the applied set";
    const auto stats = tcpshift_here({"stats", "--json"});
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    expect_in_sync();

    // After a detach the serials start again: a plan of the earlier attach with the serial the
    // maps hold now (#3 at 70) is still not theirs, and a set over it writes its tables.
    set("v1=70");  // #4
    const std::string old = (fs::temp_directory_path() / ("tcpshift-plan-" + std::to_string(netns_inode()))).string();
    fs::copy_file(cache(), old, fs::copy_options::overwrite_existing);
    ASSERT_EQ(tcpshift_here({"detach"}).exit_code, 0);
    apply(kDualStack);  // #1
    set("v1=10");
    set("v1=15");
    set("v1=25");  // #4 again
    fs::copy_file(old, cache(), fs::copy_options::overwrite_existing);
    fs::remove(old);
    EXPECT_EQ(applied_weights(status())["v1"], 25u) << "a plan of another attach stood for the applied set";
    set("v1=70");
    expect_in_sync();
}

// A set after a plan read back builds the shifted tables, and an apply that changes only the
// policy (the same weights, so the same table inputs) rewrites the tables whole: both are what
// verify compiles afresh, and clients of both families follow them.
TEST_F(PlanCacheTest, ChangesOverAPlanReadBackInstallWhatAFreshCompileWould) {
    Child v1 = start_echo(netns(), "[::]:9001", "one");
    Child v2 = start_echo(netns(), "[::]:9002", "two");
    apply(kDualStack);
    set("v1=10");
    expect_in_sync();

    std::string keepalive = kDualStack;
    keepalive.replace(keepalive.find("  subsets:"), 0,
                      "    connectionPool: {tcp: {tcpKeepalive: {time: 30s, interval: 5s, probes: 3}}}\n");
    keepalive.replace(keepalive.find("weight: 50"), 10, "weight: 10");  // as set left it: v1=10, v2=50
    const auto r = tcpshift_here({"apply", "-f", write_temp_file("keepalive.yaml", keepalive)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(applied_weights(status())["v2"], 50u);
    // verify compiles the stored set afresh, keepalive and all, and compares every table byte.
    expect_in_sync();

    auto in = enter();
    for (const char* frontend : {"127.0.0.1:31400", "[::1]:31400"}) {
        const Tally t = tally(endpoint(frontend), 300);
        EXPECT_EQ(t.failures, 0u) << frontend;
        // 10/50 over 300 connections: v1 takes about 50, v2 about 250.
        EXPECT_LT(t["one"], 90u) << frontend;
        EXPECT_GT(t["two"], 210u) << frontend;
    }
}

}  // namespace
}  // namespace tcpshift::testing
