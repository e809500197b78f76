// compile_plan over a native TrafficShift: shares, stable ids, zero weights and the map sizes.
#include <gtest/gtest.h>

#include "compile/plan.h"
#include "config/config.h"
#include "config/resolve.h"
#include "native_documents.h"

namespace tcpshift {
namespace {

constexpr const char* kValid = testing::kNativeShift;

Result<std::vector<ServiceSpec>> parse(const std::string& text, Diagnostics* diag = nullptr) {
    return testing::parse_services(text, diag);
}

TEST(Plan, SharesFollowWeightsAndSplitASubsetEvenly) {
    auto services = parse(kValid);
    ASSERT_TRUE(services);
    auto plan = compile_plan(*services, {}, default_limits());
    ASSERT_TRUE(plan) << plan.error().message;
    const PlanService& s = plan->services[0];
    EXPECT_DOUBLE_EQ(s.subsets[0].share, 0.2);
    EXPECT_DOUBLE_EQ(s.subsets[1].backends[0].share, 0.4);
    EXPECT_DOUBLE_EQ(s.subsets[1].backends[1].share, 0.4);
    EXPECT_EQ(s.tables[0].weighted_backends.size(), 3u);
}

// LEAST_CONN draws its second choice in the first choice's subset: each weighted backend knows
// where its subset starts and how many it has (v1 has one IPv4 backend, v2 two).
TEST(Plan, EachWeightedBackendKnowsItsSubsetsPlaceInTheTable) {
    auto services = parse(kValid);
    ASSERT_TRUE(services);
    auto plan = compile_plan(*services, {}, default_limits());
    ASSERT_TRUE(plan) << plan.error().message;
    const FamilyTable& t = plan->services[0].tables[0];
    EXPECT_EQ(t.group_first, (std::vector<uint16_t>{0, 1, 1}));
    EXPECT_EQ(t.group_size, (std::vector<uint16_t>{1, 2, 2}));
}

TEST(Plan, IdsAreStableAcrossCompiles) {
    auto services = parse(kValid);
    ASSERT_TRUE(services);
    IdAssignment previous{.services = {{"tcp-echo", 7}}, .backends = {{"127.0.0.1:9002", 3}}};
    auto plan = compile_plan(*services, previous, default_limits());
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->services[0].id, 7u);
    EXPECT_EQ(plan->ids.backends.at("127.0.0.1:9002"), 3u);
    EXPECT_EQ(plan->ids.backends.at("127.0.0.1:9001"), 0u);
    EXPECT_EQ(plan->ids.backends.at("[::1]:9001"), 1u);
    EXPECT_EQ(plan->ids.backends.at("127.0.0.1:9003"), 2u);
}

TEST(Plan, ZeroWeightSubsetGetsNoSlotAndNoFallback) {
    std::string text = kValid;
    text.replace(text.find("weight: 20"), 10, "weight: 0");
    auto services = parse(text);
    ASSERT_TRUE(services);
    auto plan = compile_plan(*services, {}, default_limits());
    ASSERT_TRUE(plan);
    const uint32_t v1 = plan->ids.backends.at("127.0.0.1:9001");
    for (uint16_t slot : plan->services[0].tables[0].slots) EXPECT_NE(slot, v1);
    for (uint16_t b : plan->services[0].tables[0].weighted_backends) EXPECT_NE(b, v1);
}

TEST(Plan, RefusesMoreThanTheMapsHold) {
    auto services = parse(kValid);
    ASSERT_TRUE(services);
    PlanLimits small = default_limits();
    small.max_service_backends = 2;
    auto plan = compile_plan(*services, {}, small);
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.error().message.find("has 5 backends; a service holds at most 2"), std::string::npos)
        << plan.error().message;
    small = default_limits();
    small.max_services = 0;
    plan = compile_plan(*services, {}, small);
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.error().message.find("holds at most 0 as its maps are sized; `tcpshift attach --max-services N`"),
              std::string::npos)
        << plan.error().message;
}

TEST(Plan, HoldsTheDocumentedLimits) {
    // 256 services, each with 16 subsets of 16 backends would exceed 4096 backends; the
    // documented limits are 256 services per namespace and 16 x 16 backends per service.
    std::string text;
    for (int s = 0; s < 256; ++s) {
        text += "---\napiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: svc" + std::to_string(s) +
                "}\nspec:\n  listen: [\"127.0.0.1:" + std::to_string(10000 + s) + "\"]\n  subsets:\n";
        const int subsets = s == 0 ? 16 : 1;
        for (int k = 0; k < subsets; ++k) {
            text += "  - name: s" + std::to_string(k) + "\n    weight: 1\n    backends: [";
            const int backends = s == 0 ? 16 : 2;
            for (int b = 0; b < backends; ++b)
                text += std::string(b ? ", " : "") + "\"127.1." + std::to_string(s) + "." + std::to_string(k * 16 + b) +
                        ":9000\"";
            text += "]\n";
        }
    }
    auto services = parse(text);
    ASSERT_TRUE(services) << services.error().message;
    auto plan = compile_plan(*services, {}, default_limits());
    ASSERT_TRUE(plan) << plan.error().message;
    EXPECT_EQ(plan->services.size(), 256u);
    EXPECT_EQ(plan->services[0].tables[0].weighted_backends.size(), 256u);
}

}  // namespace
}  // namespace tcpshift
