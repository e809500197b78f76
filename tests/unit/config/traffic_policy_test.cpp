// trafficPolicy as tcpshift reads it: loadBalancer modes and table sizes, tcpKeepalive, how a
// subset's policy overrides its host's and a port's replaces it, and what is refused or warned
// about, each with file:line and the field.
#include <gtest/gtest.h>

#include <string>

#include "mesh_documents.h"
#include "native_documents.h"
#include "test_names.h"

namespace tcpshift {
namespace {

using mesh_testing::docs;
using mesh_testing::replaced;

// The tcp-echo task with `policy` as the DestinationRule's spec.trafficPolicy (indented by four).
std::string mesh_with(const std::string& policy) {
    const std::string dr =
        replaced(mesh_testing::kDestinationRule, "  host: tcp-echo\n", "  host: tcp-echo\n  trafficPolicy:\n" + policy);
    return docs({mesh_testing::kWorkloads, mesh_testing::kGateway, dr, mesh_testing::kVirtualService});
}

// kNativeShift without its affinity, with `policy` as spec.policy (indented by four).
std::string native_with(const std::string& policy) {
    return replaced(testing::kNativeShift, "  affinity: source-ip\n", "  policy:\n" + policy);
}

TEST(TrafficPolicy, SimpleModesAndTableSizes) {
    struct Case {
        std::string policy;
        Balance mode;
        uint32_t table_size;
    } cases[] = {
        {"    loadBalancer: {simple: ROUND_ROBIN}\n", Balance::kRoundRobin, 0},
        {"    loadBalancer: {simple: RANDOM}\n", Balance::kRandom, 0},
        {"    loadBalancer: {simple: UNSPECIFIED}\n", Balance::kHash, 0},
        {"    loadBalancer: {simple: LEAST_REQUEST}\n", Balance::kLeastConn, 0},
        {"    loadBalancer: {simple: LEAST_CONN}\n", Balance::kLeastConn, 0},
        {"    loadBalancer: {consistentHash: {maglev: {tableSize: 251}}}\n", Balance::kHash, 251},
        {"    loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 1000}}}\n", Balance::kHash, 1009},
        {"    loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65537}}}\n", Balance::kHash,
         4093},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.policy);
        Diagnostics diag;
        auto services = mesh_testing::resolve(mesh_with(c.policy), &diag);
        ASSERT_TRUE(services) << services.error().message;
        EXPECT_EQ((*services)[0].balance.mode, c.mode);
        EXPECT_EQ((*services)[0].balance.table_size, c.table_size);
        EXPECT_EQ((*services)[0].balance.where.line, 39) << "the loadBalancer line";
        auto native = testing::parse_services(native_with(c.policy));
        ASSERT_TRUE(native) << native.error().message;
        EXPECT_EQ((*native)[0].balance.mode, c.mode);
        EXPECT_EQ((*native)[0].balance.table_size, c.table_size);
    }
}

TEST(TrafficPolicy, KeepaliveInWholeSecondsWithinTheKernelsBounds) {
    auto services = mesh_testing::resolve(
        mesh_with("    connectionPool:\n      tcp:\n        tcpKeepalive: {time: 2m, interval: 1500ms, probes: 4}\n"));
    ASSERT_TRUE(services) << services.error().message;
    const KeepalivePolicy& k = (*services)[0].keepalive;
    EXPECT_TRUE(k.enabled);
    EXPECT_EQ(k.time_s, 120u);
    EXPECT_EQ(k.interval_s, 2u) << "a fraction of a second rounds up";
    EXPECT_EQ(k.probes, 4u);
    EXPECT_EQ(k.where.line, 41) << "the tcpKeepalive line";

    services = mesh_testing::resolve(mesh_with("    connectionPool: {tcp: {tcpKeepalive: {}}}\n"));
    ASSERT_TRUE(services) << services.error().message;
    EXPECT_TRUE((*services)[0].keepalive.enabled);
    EXPECT_EQ((*services)[0].keepalive.time_s, 0u) << "left out: the kernel's";
}

TEST(TrafficPolicy, ConnectionLifetimeFromIstioAndNativePolicies) {
    struct Case {
        std::string policy;
        uint64_t duration_ms, idle_ms;
    } cases[] = {
        {"    connectionPool:\n      tcp: {maxConnectionDuration: 2s}\n", 2000, 0},
        {"    connectionPool:\n      tcp: {idleTimeout: 1h30m}\n", 0, 5400000},
        {"    connectionPool:\n      tcp: {maxConnectionDuration: 1.5s, idleTimeout: 500ms}\n", 1500, 500},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.policy);
        Diagnostics diag;
        auto services = mesh_testing::resolve(mesh_with(c.policy), &diag);
        ASSERT_TRUE(services) << services.error().message;
        EXPECT_TRUE(diag.warnings.empty()) << diag.warnings[0];
        const LifetimePolicy& l = (*services)[0].lifetime;
        EXPECT_EQ(l.max_duration_ms, c.duration_ms);
        EXPECT_EQ(l.idle_timeout_ms, c.idle_ms);
        EXPECT_EQ((c.duration_ms ? l.duration_where : l.idle_where).str(), "t.yaml:40");
        auto native = testing::parse_services(native_with(c.policy));
        ASSERT_TRUE(native) << native.error().message;
        EXPECT_EQ((*native)[0].lifetime, l);
    }
    auto none = mesh_testing::resolve(mesh_with("    connectionPool: {tcp: {tcpKeepalive: {}}}\n"));
    ASSERT_TRUE(none) << none.error().message;
    EXPECT_FALSE((*none)[0].lifetime.any()) << "left out: no limit";
}

TEST(TrafficPolicy, NativeRebalancePolicy) {
    struct Case {
        std::string spec;
        bool enabled;
        uint32_t rate, max;
        std::string error;  // empty: accepted
    } cases[] = {
        {"  rebalance: true\n", true, 50, 0, ""},
        {"  rebalance: false\n", false, 50, 0, ""},
        {"  rebalance: {rate: 20, max: 500}\n", true, 20, 500, ""},
        {"  rebalance: {rate: 0}\n", false, 0, 0, "spec.rebalance.rate: 0 is out of range"},
        {"  rebalance: {burst: 3}\n", false, 0, 0, "spec.rebalance.burst"},
        {"  rebalance: [1]\n", false, 0, 0, "spec.rebalance: must be true, false or {rate: N, max: K}"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.spec);
        auto native = testing::parse_services(replaced(testing::kNativeShift, "  affinity: source-ip\n", c.spec));
        if (!c.error.empty()) {
            ASSERT_FALSE(native) << "accepted";
            EXPECT_NE(native.error().message.find(c.error), std::string::npos) << native.error().message;
            EXPECT_NE(native.error().message.find(".yaml:"), std::string::npos) << native.error().message;
            continue;
        }
        ASSERT_TRUE(native) << native.error().message;
        EXPECT_EQ((*native)[0].rebalance.enabled, c.enabled);
        if (c.enabled) {
            EXPECT_EQ((*native)[0].rebalance.rate, c.rate);
            EXPECT_EQ((*native)[0].rebalance.max, c.max);
        }
    }
}

TEST(TrafficPolicy, VirtualServiceRebalanceAnnotation) {
    struct Case {
        std::string value;
        bool enabled;
        uint32_t rate, max;
        std::string error;  // empty: accepted
    } cases[] = {
        {"\"true\"", true, 50, 0, ""},
        {"\"false\"", false, 50, 0, ""},
        {"\"rate=20,max=500\"", true, 20, 500, ""},
        {"\"max=7\"", true, 50, 7, ""},
        {"\"rate=0\"", false, 0, 0, "rate out of range"},
        {"\"burst=3\"", false, 0, 0, "names \"burst\", which is not rate or max"},
        {"\"rate=fast\"", false, 0, 0, "not a whole number"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.value);
        const std::string vs =
            replaced(mesh_testing::kVirtualService, "metadata: {name: tcp-echo-routing, namespace: shift}\n",
                     "metadata:\n  name: tcp-echo-routing\n  namespace: shift\n  annotations:\n"
                     "    tcpshift.io/rebalance: " + c.value + "\n");
        auto services = mesh_testing::resolve(docs({mesh_testing::kWorkloads, mesh_testing::kGateway,
                                                   mesh_testing::kDestinationRule, vs}));
        if (!c.error.empty()) {
            ASSERT_FALSE(services) << "accepted";
            EXPECT_NE(services.error().message.find(c.error), std::string::npos) << services.error().message;
            EXPECT_NE(services.error().message.find("t.yaml:"), std::string::npos) << services.error().message;
            EXPECT_NE(services.error().message.find("metadata.annotations[tcpshift.io/rebalance]"), std::string::npos);
            continue;
        }
        ASSERT_TRUE(services) << services.error().message;
        EXPECT_EQ((*services)[0].rebalance.enabled, c.enabled);
        if (c.enabled) {
            EXPECT_EQ((*services)[0].rebalance.rate, c.rate);
            EXPECT_EQ((*services)[0].rebalance.max, c.max);
        }
    }
}

// loadBalancer.warmup, or the older warmupDurationSecs, with Istio's defaults; the same in a
// native policy.
TEST(TrafficPolicy, WarmupTakesIstiosFieldsAndDefaults) {
    struct Case {
        std::string policy;
        uint64_t duration_ms;
        double min_percent, aggression;
        size_t warnings;
    } cases[] = {
        {"    loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 30s}}\n", 30000, 10, 1, 0},
        {"    loadBalancer: {warmup: {duration: 1m, minimumPercent: 25.5, aggression: 2}}\n", 60000, 25.5, 2, 0},
        {"    loadBalancer: {simple: LEAST_REQUEST, warmupDurationSecs: 45s}\n", 45000, 10, 1, 0},
        {"    loadBalancer: {warmupDurationSecs: 45s, warmup: {duration: 20s, minimumPercent: 0}}\n", 20000, 0, 1, 1},
        {"    loadBalancer: {simple: RANDOM}\n", 0, 10, 1, 0},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.policy);
        Diagnostics diag;
        auto services = mesh_testing::resolve(mesh_with(c.policy), &diag);
        ASSERT_TRUE(services) << services.error().message;
        const WarmupPolicy& w = (*services)[0].balance.warmup;
        EXPECT_EQ(w.duration_ms, c.duration_ms);
        EXPECT_EQ(w.min_percent, c.min_percent);
        EXPECT_EQ(w.aggression, c.aggression);
        EXPECT_EQ(diag.warnings.size(), c.warnings);
        if (c.duration_ms) {
            EXPECT_EQ(w.where.line, 39) << "the line of loadBalancer, where the inline block is";
        }
        auto native = testing::parse_services(native_with(c.policy));
        ASSERT_TRUE(native) << native.error().message;
        EXPECT_EQ((*native)[0].balance.warmup, w);
    }
}

// Envoy's slow-start factor: max(minimumPercent, (max(t, 1 s) / duration)^(1 / aggression)).
TEST(TrafficPolicy, WarmupFactorFollowsEnvoysFormula) {
    const WarmupPolicy linear{.duration_ms = 10000};
    EXPECT_DOUBLE_EQ(linear.factor(0), 0.1);      // max(t, 1 s): 1/10, and the 10% floor
    EXPECT_DOUBLE_EQ(linear.factor(2500), 0.25);
    EXPECT_DOUBLE_EQ(linear.factor(5000), 0.5);
    EXPECT_DOUBLE_EQ(linear.factor(9999), 0.9999);
    EXPECT_DOUBLE_EQ(linear.factor(10000), 1);
    const WarmupPolicy floor{.duration_ms = 100000, .min_percent = 30};
    EXPECT_DOUBLE_EQ(floor.factor(20000), 0.3);   // 20% is under the floor
    EXPECT_DOUBLE_EQ(floor.factor(50000), 0.5);
    const WarmupPolicy eager{.duration_ms = 10000, .min_percent = 0, .aggression = 2};
    EXPECT_DOUBLE_EQ(eager.factor(2500), 0.5);    // sqrt(1/4): a faster start
    const WarmupPolicy slow{.duration_ms = 10000, .min_percent = 0, .aggression = 0.5};
    EXPECT_DOUBLE_EQ(slow.factor(5000), 0.25);    // (1/2)^2: a slower start
    EXPECT_DOUBLE_EQ(WarmupPolicy{}.factor(0), 1) << "no warmup: the whole weight";
}

TEST(TrafficPolicy, RefusalsNameFileLineAndField) {
    const std::string lb = "t.yaml:40: spec.trafficPolicy.loadBalancer.";
    struct Case {
        std::string policy, want;
    } cases[] = {
        {"    loadBalancer:\n      simple: PASSTHROUGH\n", lb + "simple: PASSTHROUGH sends a connection to the address"},
        {"    loadBalancer:\n      simple: WEIGHTED\n", lb + "simple: \"WEIGHTED\" is not UNSPECIFIED, RANDOM"},
        {"    loadBalancer:\n      consistentHash: {maglev: {tableSize: 100}}\n",
         lb + "consistentHash.maglev.tableSize: 100 is not a prime"},
        {"    loadBalancer:\n      simple: RANDOM\n      consistentHash: {useSourceIp: true}\n",
         "t.yaml:41: spec.trafficPolicy.loadBalancer: simple and consistentHash are alternatives"},
        {"    connectionPool:\n      tcp:\n        tcpKeepalive: {time: 10h}\n",
         "t.yaml:41: spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time"},
        {"    connectionPool:\n      tcp:\n        tcpKeepalive: {probes: 200}\n",
         "t.yaml:41: spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.probes: 200 is out of range 1-127"},
        {"    connectionPool:\n      tcp:\n        maxConnectionDuration: -2s\n",
         "t.yaml:41: spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration"},
        {"    connectionPool:\n      tcp:\n        idleTimeout: soon\n",
         "t.yaml:41: spec.trafficPolicy.connectionPool.tcp.idleTimeout"},
        {"    loadBalancer:\n      warmup: {minimumPercent: 20}\n",
         lb + "warmup.duration: required"},
        {"    loadBalancer:\n      warmup: {duration: 500ms}\n", lb + "warmup.duration: 500ms is out of range 1 s to 1 h"},
        {"    loadBalancer:\n      warmup: {duration: 1m, minimumPercent: 120}\n",
         lb + "warmup.minimumPercent: 120 is out of range 0-100"},
        {"    loadBalancer:\n      warmup: {duration: 1m, aggression: 0}\n", lb + "warmup.aggression: 0 is out of range"},
        {"    loadBalancer:\n      warmup: {duration: 1m, aggression: fast}\n",
         lb + "warmup.aggression: \"fast\" is not a number"},
        {"    loadBalancer:\n      warmup: {duration: 1m, ramp: 2}\n", lb + "warmup."},
        {"    loadBalancer:\n      warmupDurationSecs: 2h\n", lb + "warmupDurationSecs: 2h is out of range"},
        {"    portLevelSettings:\n    - loadBalancer: {simple: RANDOM}\n",
         "t.yaml:40: spec.trafficPolicy.portLevelSettings[0].port: missing"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.policy);
        auto services = mesh_testing::resolve(mesh_with(c.policy));
        ASSERT_FALSE(services) << "accepted";
        EXPECT_NE(services.error().message.find(c.want), std::string::npos)
            << "\n got: " << services.error().message << "\nwant: " << c.want;
        EXPECT_EQ(services.error().message.find('\n'), std::string::npos) << "errors are one line";
    }
}

TEST(TrafficPolicy, WhatIsNotHonouredIsWarnedAboutAndStrictRefusesIt) {
    for (const std::string policy : {"    loadBalancer: {localityLbSetting: {enabled: true}}\n",
                                     "    connectionPool: {http: {http1MaxPendingRequests: 10}}\n",
                                     "    connectionPool: {tcp: {connectTimeout: 1s}}\n",
                                     "    loadBalancer: {consistentHash: {useSourceIp: true}, warmupDurationSecs: 30s}\n",
                                     "    loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n"}) {
        SCOPED_TRACE(policy);
        Diagnostics diag;
        auto services = mesh_testing::resolve(mesh_with(policy), &diag);
        ASSERT_TRUE(services) << services.error().message;
        ASSERT_EQ(diag.warnings.size(), 1u);
        EXPECT_EQ(diag.warnings[0].rfind("t.yaml:", 0), 0u) << diag.warnings[0];
        Diagnostics strict{.strict = true};
        EXPECT_FALSE(mesh_testing::resolve(mesh_with(policy), &strict)) << "--strict accepted it";
    }
}

// A subset's loadBalancer overrides the host's; a port's settings replace the host's policy
// for that port whole (its keepalive is not inherited), and other ports keep the host's.
TEST(TrafficPolicy, SubsetOverridesHostAndPortSettingsDoNotInherit) {
    const std::string host = "    loadBalancer: {simple: RANDOM}\n"
                             "    connectionPool: {tcp: {tcpKeepalive: {time: 60s}}}\n";
    auto services = mesh_testing::resolve(mesh_with(host));
    ASSERT_TRUE(services) << services.error().message;
    EXPECT_EQ((*services)[0].balance.mode, Balance::kRandom);
    EXPECT_TRUE((*services)[0].keepalive.enabled);

    services = mesh_testing::resolve(mesh_with(host + "    portLevelSettings:\n    - port: {number: 9000}\n"
                                                      "      loadBalancer: {simple: ROUND_ROBIN}\n"));
    ASSERT_TRUE(services) << services.error().message;
    EXPECT_EQ((*services)[0].balance.mode, Balance::kRoundRobin) << "the destinations use port 9000";
    EXPECT_FALSE((*services)[0].keepalive.enabled) << "a port's settings inherit nothing from the host's";

    services = mesh_testing::resolve(mesh_with(host + "    portLevelSettings:\n    - port: {number: 9001}\n"
                                                      "      loadBalancer: {simple: ROUND_ROBIN}\n"));
    ASSERT_TRUE(services) << services.error().message;
    EXPECT_EQ((*services)[0].balance.mode, Balance::kRandom) << "another port's settings do not apply";
    EXPECT_TRUE((*services)[0].keepalive.enabled);

    // Both subsets override the host's mode alike: the service takes theirs, with no warning.
    std::string dr = replaced(mesh_testing::kDestinationRule, "  host: tcp-echo\n",
                              "  host: tcp-echo\n  trafficPolicy:\n" + host);
    for (const char* name : {"v1", "v2"})
        dr = replaced(dr, std::string("  - {name: ") + name + ", labels: {version: " + name + "}}\n",
                      std::string("  - name: ") + name + "\n    labels: {version: " + name +
                          "}\n    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n");
    Diagnostics diag;
    services = mesh_testing::resolve(
        docs({mesh_testing::kWorkloads, mesh_testing::kGateway, dr, mesh_testing::kVirtualService}), &diag);
    ASSERT_TRUE(services) << services.error().message;
    EXPECT_EQ((*services)[0].balance.mode, Balance::kRoundRobin);
    EXPECT_TRUE((*services)[0].keepalive.enabled) << "the subsets leave connectionPool to the host";
    EXPECT_TRUE(diag.warnings.empty()) << diag.warnings[0];
}

TEST(TrafficPolicy, NativePolicyCannotRepeatAffinityOrGiveFrontendsTwoPolicies) {
    auto twice = testing::parse_services(replaced(testing::kNativeShift, "  affinity: source-ip\n",
                                                  "  affinity: source-ip\n  policy:\n"
                                                  "    loadBalancer: {simple: RANDOM}\n"));
    ASSERT_FALSE(twice);
    EXPECT_NE(twice.error().message.find("spec.policy.loadBalancer: spec.affinity (line"), std::string::npos)
        << twice.error().message;
}

}  // namespace
}  // namespace tcpshift
