// Outlier detection for connect-time backends: a TrafficShift's spec.outlierDetection and a
// DestinationRule's trafficPolicy.outlierDetection, each value read, each refusal with
// file:line and the field, and the warnings for what has no meaning without a proxy.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mesh_documents.h"
#include "native_documents.h"
#include "test_names.h"

namespace tcpshift {
namespace {

using mesh_testing::docs;
using mesh_testing::replaced;

// kNativeShift with `block` (lines indented by two) after its affinity.
std::string native_with(const std::string& block) {
    return replaced(testing::kNativeShift, "  affinity: source-ip\n", "  affinity: source-ip\n" + block);
}

// The tcp-echo task with `policy` as the DestinationRule's spec.trafficPolicy (indented by four).
std::string mesh_with(const std::string& policy) {
    const std::string dr =
        replaced(mesh_testing::kDestinationRule, "  host: tcp-echo\n", "  host: tcp-echo\n  trafficPolicy:\n" + policy);
    return docs({mesh_testing::kWorkloads, mesh_testing::kGateway, dr, mesh_testing::kVirtualService});
}

TEST(Outlier, WithoutAPolicyAServiceHasIstiosDefaults) {
    auto services = testing::parse_services(testing::kNativeShift);
    ASSERT_TRUE(services) << services.error().message;
    EXPECT_EQ((*services)[0].outlier.consecutive_errors, 5u);
    EXPECT_EQ((*services)[0].outlier.base_ejection_ms, 30000u);
    EXPECT_TRUE((*services)[0].outlier.where.file.empty());
}

TEST(Outlier, TheNativeResourceReadsItsPolicy) {
    struct Case {
        std::string desc;
        std::string block;
        uint32_t errors;
        uint64_t ms;
        uint32_t min_health = 0;
    };
    const Case cases[] = {
        {.desc = "min health", .block = "  outlierDetection: {minHealthPercent: 60}\n", .errors = 5, .ms = 30000,
         .min_health = 60},
        {.desc = "both", .block = "  outlierDetection: {consecutiveErrors: 3, baseEjectionTime: 2s}\n", .errors = 3,
         .ms = 2000},
        {.desc = "errors alone", .block = "  outlierDetection: {consecutiveErrors: 7}\n", .errors = 7, .ms = 30000},
        {.desc = "time alone", .block = "  outlierDetection: {baseEjectionTime: 1.5s}\n", .errors = 5, .ms = 1500},
        {.desc = "never eject", .block = "  outlierDetection: {consecutiveErrors: 0}\n", .errors = 0, .ms = 30000},
        {.desc = "empty", .block = "  outlierDetection: {}\n", .errors = 5, .ms = 30000},
        {.desc = "a day", .block = "  outlierDetection: {baseEjectionTime: 24h}\n", .errors = 5, .ms = 86400000},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        auto services = testing::parse_services(native_with(c.block));
        ASSERT_TRUE(services) << services.error().message;
        const OutlierPolicy& p = (*services)[0].outlier;
        EXPECT_EQ(p.consecutive_errors, c.errors);
        EXPECT_EQ(p.base_ejection_ms, c.ms);
        EXPECT_EQ(p.min_health_percent, c.min_health);
        EXPECT_EQ(p.where.str(), "t.yaml:8");
    }
}

TEST(Outlier, TheNativeResourceRefusesABadPolicyWithFileLineAndField) {
    struct Case {
        std::string desc;
        std::string block;
        std::string want;
    };
    const std::string errors = "t.yaml:8: spec.outlierDetection.consecutiveErrors: ";
    const std::string time = "t.yaml:8: spec.outlierDetection.baseEjectionTime: ";
    const Case cases[] = {
        {.desc = "negative errors", .block = "  outlierDetection: {consecutiveErrors: -1}\n",
         .want = errors + "-1 is out of range 0-4294967295"},
        {.desc = "errors above 32 bits", .block = "  outlierDetection: {consecutiveErrors: 4294967296}\n",
         .want = errors + "4294967296 is out of range"},
        {.desc = "errors not a number", .block = "  outlierDetection: {consecutiveErrors: three}\n",
         .want = errors + "\"three\" is not an integer"},
        {.desc = "time without a unit", .block = "  outlierDetection: {baseEjectionTime: 10}\n",
         .want = time + "\"10\" is not a duration such as 30s, 1.5s, 500ms or 1m: each number needs a unit"},
        {.desc = "negative time", .block = "  outlierDetection: {baseEjectionTime: -1s}\n",
         .want = time + "\"-1s\" is not a duration"},
        {.desc = "zero time", .block = "  outlierDetection: {baseEjectionTime: 0s}\n",
         .want = time + "0s is out of range 1 ms to 24 h"},
        {.desc = "time above a day", .block = "  outlierDetection: {baseEjectionTime: 25h}\n",
         .want = time + "25h is out of range"},
        {.desc = "time a list", .block = "  outlierDetection: {baseEjectionTime: [1s]}\n",
         .want = time + "must be a duration such as 30s"},
        {.desc = "an Istio field", .block = "  outlierDetection: {interval: 10s}\n",
         .want = "t.yaml:8: spec.outlierDetection.interval: unknown field; known here: consecutiveErrors, "
                 "baseEjectionTime"},
        {.desc = "min health above 100", .block = "  outlierDetection: {minHealthPercent: 101}\n",
         .want = "t.yaml:8: spec.outlierDetection.minHealthPercent: 101 is out of range 0-100"},
        {.desc = "not a mapping", .block = "  outlierDetection: [3]\n",
         .want = "t.yaml:8: spec.outlierDetection: must be a mapping"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        auto services = testing::parse_services(native_with(c.block));
        ASSERT_FALSE(services) << "accepted";
        EXPECT_EQ(services.error().kind, ErrorKind::kConfig);
        EXPECT_NE(services.error().message.find(c.want), std::string::npos)
            << "\n got: " << services.error().message << "\nwant: " << c.want;
        EXPECT_EQ(services.error().message.find('\n'), std::string::npos) << "errors are one line";
    }
}

// For TCP a failed connection is both a 5xx and a gateway error: the smaller enabled threshold
// ejects, consecutive5xxErrors being 5 when left out; fields without meaning here are warned.
TEST(Outlier, ADestinationRuleGivesItsHostsServiceItsPolicy) {
    struct Case {
        std::string desc;
        std::string policy;
        uint32_t errors;
        uint64_t ms;
        std::vector<std::string> warnings;
        uint32_t max_percent = kDefaultMaxEjectionPercent;  // Istio's 10 once the block is written
        uint32_t min_health = 0;                              // Istio's default: no panic
    };
    const Case cases[] = {
        {.desc = "5xx and time", .policy = "    outlierDetection: {consecutive5xxErrors: 3, baseEjectionTime: 2s}\n",
         .errors = 3, .ms = 2000},
        {.desc = "max ejection percent", .policy = "    outlierDetection: {maxEjectionPercent: 50}\n", .errors = 5,
         .ms = 30000, .max_percent = 50},
        {.desc = "gateway below the 5xx default", .policy = "    outlierDetection: {consecutiveGatewayErrors: 2}\n",
         .errors = 2, .ms = 30000},
        {.desc = "gateway above the 5xx default", .policy = "    outlierDetection: {consecutiveGatewayErrors: 10}\n",
         .errors = 5, .ms = 30000},
        {.desc = "5xx off, gateway on",
         .policy = "    outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 7}\n", .errors = 7,
         .ms = 30000},
        {.desc = "both set", .policy = "    outlierDetection: {consecutive5xxErrors: 4, consecutiveGatewayErrors: 6}\n",
         .errors = 4, .ms = 30000},
        {.desc = "all off", .policy = "    outlierDetection: {consecutive5xxErrors: 0}\n", .errors = 0, .ms = 30000},
        {.desc = "ignored fields, and minHealthPercent",
         .policy = "    outlierDetection:\n      baseEjectionTime: 1m\n      interval: 10s\n"
                   "      maxEjectionPercent: 100\n      minHealthPercent: 50\n"
                   "      splitExternalLocalOriginErrors: true\n      consecutiveLocalOriginFailures: 2\n"
                   "      consecutiveErrors: 3\n",
         .errors = 5,
         .ms = 60000,
         .warnings = {"t.yaml:41: spec.trafficPolicy.outlierDetection.interval: ignored; a failed connection is "
                      "counted as it happens, with no sweep",
                      "spec.trafficPolicy.outlierDetection.splitExternalLocalOriginErrors: ignored; for TCP every "
                      "failure is a failed connection",
                      "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: ignored",
                      "spec.trafficPolicy.outlierDetection.consecutiveErrors: ignored; deprecated by Istio: use "
                      "consecutive5xxErrors"},
         .max_percent = 100,
         .min_health = 50},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        Diagnostics diag;
        auto services = mesh_testing::resolve(mesh_with(c.policy), &diag);
        ASSERT_TRUE(services) << services.error().message;
        const OutlierPolicy& p = (*services)[0].outlier;
        EXPECT_EQ(p.consecutive_errors, c.errors);
        EXPECT_EQ(p.base_ejection_ms, c.ms);
        EXPECT_EQ(p.max_ejection_percent, c.max_percent);
        EXPECT_EQ(p.min_health_percent, c.min_health);
        EXPECT_EQ(p.where.str(), "t.yaml:39");
        ASSERT_EQ(diag.warnings.size(), c.warnings.size());
        for (size_t i = 0; i < c.warnings.size(); ++i)
            EXPECT_NE(diag.warnings[i].find(c.warnings[i]), std::string::npos) << diag.warnings[i];
    }
}

TEST(Outlier, ADestinationRuleRefusesABadPolicyWithFileLineAndField) {
    struct Case {
        std::string desc;
        std::string policy;
        std::string want;
    };
    const std::string field = "t.yaml:39: spec.trafficPolicy.outlierDetection.";
    const Case cases[] = {
        {.desc = "negative 5xx", .policy = "    outlierDetection: {consecutive5xxErrors: -3}\n",
         .want = field + "consecutive5xxErrors: -3 is out of range 0-4294967295"},
        {.desc = "gateway not a number", .policy = "    outlierDetection: {consecutiveGatewayErrors: many}\n",
         .want = field + "consecutiveGatewayErrors: \"many\" is not an integer"},
        {.desc = "time without a unit", .policy = "    outlierDetection: {baseEjectionTime: 30}\n",
         .want = field + "baseEjectionTime: \"30\" is not a duration"},
        {.desc = "time below a millisecond", .policy = "    outlierDetection: {baseEjectionTime: 0.5ms}\n",
         .want = field + "baseEjectionTime: \"0.5ms\" is not a duration such as 30s, 1.5s, 500ms or 1m: it is "
                         "finer than a millisecond"},
        {.desc = "misspelt field", .policy = "    outlierDetection: {consecutive5xxError: 3}\n",
         .want = field + "consecutive5xxError: unknown field; known here: consecutive5xxErrors"},
        {.desc = "not a mapping", .policy = "    outlierDetection: 3\n",
         .want = "t.yaml:39: spec.trafficPolicy.outlierDetection: must be a mapping"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        auto services = mesh_testing::resolve(mesh_with(c.policy));
        ASSERT_FALSE(services) << "accepted";
        EXPECT_NE(services.error().message.find(c.want), std::string::npos)
            << "\n got: " << services.error().message << "\nwant: " << c.want;
        EXPECT_EQ(services.error().message.find('\n'), std::string::npos) << "errors are one line";
    }
}

// One policy holds for a service: a subset's own applies to its destination (Istio's rule), and
// a destination whose policy differs from the first's is warned about; --strict refuses what
// it cannot honour.
TEST(Outlier, ASubsetsPolicyIsWarnedAboutAndStrictRefusesIgnoredFields) {
    const std::string dr = replaced(mesh_testing::kDestinationRule, "  - {name: v2, labels: {version: v2}}\n",
                                    "  - name: v2\n    labels: {version: v2}\n"
                                    "    trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}}\n");
    Diagnostics diag;
    auto services = mesh_testing::resolve(
        docs({mesh_testing::kWorkloads, mesh_testing::kGateway, dr, mesh_testing::kVirtualService}), &diag);
    ASSERT_TRUE(services) << services.error().message;
    EXPECT_EQ((*services)[0].outlier.consecutive_errors, 5u);
    ASSERT_EQ(diag.warnings.size(), 1u);
    EXPECT_NE(diag.warnings[0].find("the outlierDetection of this destination (t.yaml:42) differs from the one "
                                    "service tcp-echo-routing takes (the default)"),
              std::string::npos)
        << diag.warnings[0];

    Diagnostics strict{.strict = true};
    services = mesh_testing::resolve(mesh_with("    outlierDetection: {interval: 5s}\n"), &strict);
    ASSERT_FALSE(services);
    EXPECT_NE(services.error().message.find("outlierDetection.interval: ignored"), std::string::npos)
        << services.error().message;
    EXPECT_NE(services.error().message.find("(an error under --strict)"), std::string::npos);
}

}  // namespace
}  // namespace tcpshift
