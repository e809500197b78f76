// `set` as an edit of the applied set: it takes the parsed applied set as it is, changes the
// weights of the service's own resource only, and leaves the set it was given untouched (the
// transaction rolls back to it).
#include "apply/reweight.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "apply/transaction.h"
#include "config/resolve.h"

namespace tcpshift {
namespace {

const char* kTwo = R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: a}
spec:
  listen: ["127.0.0.1:31400"]
  subsets:
  - {name: v1, weight: 50, backends: ["127.0.0.1:9001"]}
  - {name: v2, weight: 50, backends: ["127.0.0.1:9002"]}
---
apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: b}
spec:
  listen: ["127.0.0.1:31401"]
  subsets:
  - {name: v1, weight: 10, backends: ["127.0.0.1:9003"]}
  - {name: v2, weight: 90, backends: ["127.0.0.1:9004"]}
)";

int subset_weight(const Resource& r, size_t subset) { return r.node["spec"]["subsets"][subset]["weight"].as<int>(); }

Applied applied_two() {
    auto resources = parse_resources(kTwo, "two.yaml", "default", nullptr);
    EXPECT_TRUE(resources) << resources.error().message;
    auto next = with_resources(AppliedState{}, *resources);
    EXPECT_TRUE(next) << next.error().message;
    Applied applied{.state = next->state, .resources = next->resources};
    auto services = resolve_services(applied.resources, nullptr);
    EXPECT_TRUE(services) << services.error().message;
    auto plan = compile_plan(*services, {}, default_limits());
    EXPECT_TRUE(plan) << plan.error().message;
    applied.plan = *plan;
    return applied;
}

TEST(Reweight, OnlyTheServicesResourceChangesAndTheAppliedSetIsLeftAsItWas) {
    const Applied before = applied_two();
    auto next = reweighted(before, "b", {{"v1", 70}}, NetnsId{});
    ASSERT_TRUE(next) << next.error().message;
    ASSERT_EQ(next->resources.size(), 2u);
    EXPECT_EQ(subset_weight(next->resources[1], 0), 70);
    EXPECT_EQ(subset_weight(next->resources[1], 1), 90) << "an unnamed subset keeps its weight";
    EXPECT_EQ(subset_weight(next->resources[0], 0), 50) << "another service's resource is untouched";
    EXPECT_EQ(next->state.resources[1].source, "tcpshift set");
    EXPECT_NE(next->state.resources[1].yaml.find("70"), std::string::npos) << next->state.resources[1].yaml;
    // The set it was given, which a failed commit puts back, still says 10.
    EXPECT_EQ(subset_weight(before.resources[1], 0), 10);
    EXPECT_EQ(before.state.resources[1].yaml, applied_two().state.resources[1].yaml);
}

// The agent stages a set it has not parsed into an Applied of its own: the weights are set
// all the same.
TEST(Reweight, AnAppliedSetGivenWithoutItsParsedResourcesIsParsedFirst) {
    Applied state_only = applied_two();
    state_only.resources.clear();
    auto next = reweighted(state_only, "b", {{"v1", 70}}, NetnsId{});
    ASSERT_TRUE(next) << next.error().message;
    ASSERT_EQ(next->resources.size(), 2u);
    EXPECT_EQ(subset_weight(next->resources[1], 0), 70);
    EXPECT_TRUE(next->changed);
}

TEST(Reweight, TheParsedSetGivesWhatParsingTheStoredOneGives) {
    const Applied before = applied_two();
    std::string edited = kTwo;
    edited.replace(edited.find("weight: 50"), 10, "weight: 40");
    auto incoming = parse_resources(edited, "again.yaml", "default", nullptr);
    ASSERT_TRUE(incoming) << incoming.error().message;
    const std::vector<Resource> one{(*incoming)[0]};
    auto parsed = with_resources(before.parsed(), one);
    auto stored = with_resources(before.state, one);
    ASSERT_TRUE(parsed) << parsed.error().message;
    ASSERT_TRUE(stored) << stored.error().message;
    ASSERT_EQ(parsed->resources.size(), stored->resources.size());
    for (size_t i = 0; i < parsed->resources.size(); ++i) {
        EXPECT_EQ(parsed->resources[i].key(), stored->resources[i].key());
        EXPECT_EQ(parsed->state.resources[i].yaml, stored->state.resources[i].yaml);
        EXPECT_EQ(parsed->state.resources[i].source, stored->state.resources[i].source);
    }
    EXPECT_EQ(parsed->resources[0].where.file, "again.yaml");
    auto without = without_resources(before.parsed(), {(*incoming)[0].key()});
    ASSERT_TRUE(without) << without.error().message;
    ASSERT_EQ(without->resources.size(), 1u);
    EXPECT_EQ(without->resources[0].name, "b");
    EXPECT_TRUE(without->changed);
}

// A document the set already holds as it is changes nothing, wherever it comes from: the set
// is not written again, and it keeps the place it came from first. One edited document beside
// it is a change, of that document alone.
TEST(Reweight, ADocumentStoredAsItIsChangesNothing) {
    const Applied before = applied_two();
    auto same = parse_resources(kTwo, "again.yaml", "default", nullptr);
    ASSERT_TRUE(same) << same.error().message;
    auto next = with_resources(before.parsed(), *same);
    ASSERT_TRUE(next) << next.error().message;
    EXPECT_FALSE(next->changed);
    ASSERT_EQ(next->unchanged.size(), 2u);
    EXPECT_EQ(next->state.resources[0].source, before.state.resources[0].source);

    std::string edited = kTwo;
    edited.replace(edited.find("weight: 90"), 10, "weight: 80");
    auto one_edited = parse_resources(edited, "again.yaml", "default", nullptr);
    ASSERT_TRUE(one_edited) << one_edited.error().message;
    auto changed = with_resources(before.parsed(), *one_edited);
    ASSERT_TRUE(changed) << changed.error().message;
    EXPECT_TRUE(changed->changed);
    ASSERT_EQ(changed->unchanged.size(), 1u);
    EXPECT_EQ(changed->unchanged[0], (*one_edited)[0].key());
    EXPECT_EQ(subset_weight(changed->resources[1], 1), 80);

    // `set` to the weights a service has is no change either.
    auto reset = reweighted(before, "b", {{"v1", 10}}, NetnsId{});
    ASSERT_TRUE(reset) << reset.error().message;
    EXPECT_FALSE(reset->changed);
}

TEST(Reweight, AnUnknownServiceOrSubsetIsRefusedNamingWhatThereIs) {
    const Applied before = applied_two();
    auto service = reweighted(before, "c", {{"v1", 70}}, NetnsId{});
    ASSERT_FALSE(service);
    EXPECT_NE(service.error().message.find("applied: a, b"), std::string::npos) << service.error().message;

    // Among many, the nearest few, nearest first, and how many there are.
    Applied many;
    for (int i = 0; i < 3000; ++i) many.plan.services.emplace_back().name = "svc-" + std::to_string(i);
    many.plan.services.emplace_back().name = "payments";
    auto typo = reweighted(many, "paymnets", {{"v1", 70}}, NetnsId{});
    ASSERT_FALSE(typo);
    const std::string& m = typo.error().message;
    EXPECT_NE(m.find("; the nearest of the 3001 applied: payments, "), std::string::npos) << m;
    EXPECT_EQ(std::count(m.begin(), m.end(), ','), 7) << "eight names: " << m;
    EXPECT_NE(m.find("(tcpshift status lists them all)"), std::string::npos) << m;

    auto subset = reweighted(before, "a", {{"v3", 70}}, NetnsId{});
    ASSERT_FALSE(subset);
    EXPECT_NE(subset.error().message.find("its subsets: v1, v2"), std::string::npos) << subset.error().message;
}

}  // namespace
}  // namespace tcpshift
