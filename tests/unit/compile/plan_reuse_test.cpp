// compile_plan with a previous plan to reuse: whatever the edit, the plan is the one compiled
// from scratch, and only the tables whose inputs are unchanged are taken over.
#include <gtest/gtest.h>

#include <functional>

#include "compile/plan.h"

namespace tcpshift {
namespace {

Endpoint ep(const std::string& text) { return *parse_endpoint(text); }

ServiceSpec service(const std::string& name, uint16_t port, uint32_t w1, uint32_t w2,
                    const std::string& b1 = "127.0.0.1:9001", const std::string& b2 = "[::1]:9002") {
    return ServiceSpec{
        .name = name,
        .listen = {ep("127.0.0.1:" + std::to_string(port)), ep("[::1]:" + std::to_string(port))},
        .subsets = {SubsetSpec{.name = "v1", .weight = w1, .backends = {ep(b1), ep("[::1]:9001")}},
                    SubsetSpec{.name = "v2", .weight = w2, .backends = {ep("127.0.0.1:9002"), ep(b2)}}},
        .where = {.file = "t.yaml", .line = 1}};
}

std::vector<ServiceSpec> three() {
    return {service("a", 31400, 50, 50), service("b", 31401, 20, 80), service("c", 31402, 90, 10)};
}

// Compiles `edited` from scratch and over the plan of three(); both must agree table for table.
void expect_same_as_from_scratch(const std::function<void(std::vector<ServiceSpec>&)>& edit, const char* what) {
    auto before = compile_plan(three(), {}, default_limits());
    ASSERT_TRUE(before) << before.error().message;
    std::vector<ServiceSpec> edited = three();
    edit(edited);
    auto scratch = compile_plan(edited, before->ids, default_limits());
    auto reused = compile_plan(edited, before->ids, default_limits(), &*before);
    ASSERT_TRUE(scratch) << what << ": " << scratch.error().message;
    ASSERT_TRUE(reused) << what << ": " << reused.error().message;
    ASSERT_EQ(scratch->services.size(), reused->services.size()) << what;
    for (size_t i = 0; i < scratch->services.size(); ++i)
        for (size_t f = 0; f < 2; ++f) {
            const FamilyTable& x = scratch->services[i].tables[f];
            const FamilyTable& y = reused->services[i].tables[f];
            EXPECT_EQ(x.slots, y.slots) << what << ": service " << scratch->services[i].name << ", family " << f;
            EXPECT_EQ(x.weighted_backends, y.weighted_backends) << what << ": " << scratch->services[i].name;
            EXPECT_EQ(x.group_first, y.group_first) << what;
            EXPECT_EQ(x.group_size, y.group_size) << what;
        }
    EXPECT_EQ(scratch->ids.backends, reused->ids.backends) << what;
}

TEST(PlanReuse, EveryEditGivesThePlanCompiledFromScratch) {
    expect_same_as_from_scratch([](auto&) {}, "nothing changed");
    expect_same_as_from_scratch([](auto& s) { s[1].subsets[0].weight = 70; }, "one weight");
    expect_same_as_from_scratch([](auto& s) { s[1].subsets[1].weight = 0; }, "a subset to zero");
    expect_same_as_from_scratch([](auto& s) { std::swap(s[0].subsets[0], s[0].subsets[1]); }, "subsets reordered");
    expect_same_as_from_scratch([](auto& s) { s[2] = service("c", 31402, 90, 10, "127.0.0.1:9003"); },
                                "a backend's address, the same weights");
    expect_same_as_from_scratch([](auto& s) { s[2] = service("c", 31402, 90, 10, "127.0.0.1:9001", "[::1]:9003"); },
                                "an IPv6 backend's address only");
    expect_same_as_from_scratch([](auto& s) { s[0].balance.mode = Balance::kRoundRobin; }, "the balance mode");
    expect_same_as_from_scratch([](auto& s) { s[0].balance.table_size = 251; }, "the table size");
    expect_same_as_from_scratch([](auto& s) { s[1].subsets[0].backends.push_back(ep("127.0.0.1:9005")); },
                                "a backend added to a subset");
    expect_same_as_from_scratch([](auto& s) { s.erase(s.begin()); }, "a service removed");
    expect_same_as_from_scratch([](auto& s) { std::swap(s[0].name, s[1].name); }, "two services' names swapped");
}

TEST(PlanReuse, AnUnchangedServiceKeepsItsTablesAndAChangedOneGetsNewOnes) {
    auto before = compile_plan(three(), {}, default_limits());
    ASSERT_TRUE(before) << before.error().message;
    std::vector<ServiceSpec> edited = three();
    edited[1].subsets[0].weight = 70;
    auto after = compile_plan(edited, before->ids, default_limits(), &*before);
    ASSERT_TRUE(after) << after.error().message;
    EXPECT_EQ(after->services[0].tables[0].slots, before->services[0].tables[0].slots);
    EXPECT_EQ(after->services[2].tables[1].slots, before->services[2].tables[1].slots);
    EXPECT_NE(after->services[1].tables[0].slots, before->services[1].tables[0].slots) << "b shifted to 70/80";
    EXPECT_NE(after->services[1].tables[1].slots, before->services[1].tables[1].slots);
}

TEST(PlanReuse, AWeightBelowOneSlotIsRefusedAsFromScratch) {
    auto before = compile_plan(three(), {}, default_limits());
    ASSERT_TRUE(before) << before.error().message;
    std::vector<ServiceSpec> edited = three();
    edited[0].subsets[0].weight = 1;
    edited[0].subsets[1].weight = 100000;
    auto reused = compile_plan(edited, before->ids, default_limits(), &*before);
    auto scratch = compile_plan(edited, before->ids, default_limits());
    ASSERT_FALSE(scratch);
    ASSERT_FALSE(reused);
    EXPECT_EQ(reused.error().message, scratch.error().message);
}

}  // namespace
}  // namespace tcpshift
