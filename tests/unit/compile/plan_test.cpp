// compile_plan: one weight table per client family, and weights that cannot be honoured
// refused with the reason. The ids are plan_ids_test's.
#include <gtest/gtest.h>

#include <map>

#include "bpf/abi.h"
#include "compile/plan.h"

namespace tcpshift {
namespace {

Endpoint ep(const std::string& text) { return *parse_endpoint(text); }

std::vector<Endpoint> eps(const std::vector<std::string>& texts) {
    std::vector<Endpoint> out;
    for (const auto& t : texts) out.push_back(ep(t));
    return out;
}

ServiceSpec service(const std::vector<std::string>& listen, std::vector<SubsetSpec> subsets) {
    return ServiceSpec{.name = "svc", .listen = eps(listen), .subsets = std::move(subsets), .where = {.file = "t.yaml", .line = 1}};
}

SubsetSpec subset(const std::string& name, uint32_t weight, const std::vector<std::string>& backends) {
    return SubsetSpec{.name = name, .weight = weight, .backends = eps(backends), .where = {.file = "t.yaml", .line = 5}};
}

// Slots per backend address in one family's table.
std::map<std::string, uint32_t> slots_by_address(const Plan& plan, int family) {
    std::map<uint32_t, std::string> name;
    for (const auto& [address, id] : plan.ids.backends) name[id] = address;
    std::map<std::string, uint32_t> count;
    for (uint16_t slot : plan.services[0].tables[family_index(family)].slots) ++count[name[slot]];
    return count;
}

struct FamilyCase {
    const char* desc;
    ServiceSpec svc;
    std::string want_error;  // empty: compiles
};

void PrintTo(const FamilyCase& c, std::ostream* os) { *os << c.desc; }

class FamilyTest : public ::testing::TestWithParam<FamilyCase> {};

TEST_P(FamilyTest, EachFrontendFamilyIsServedOrRefused) {
    const FamilyCase& c = GetParam();
    auto plan = compile_plan({c.svc}, {}, default_limits());
    if (c.want_error.empty()) {
        ASSERT_TRUE(plan) << plan.error().message;
        return;
    }
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.error().message.find(c.want_error), std::string::npos) << plan.error().message;
    EXPECT_EQ(plan.error().message.find('\n'), std::string::npos) << "one line";
}

INSTANTIATE_TEST_SUITE_P(
    Table, FamilyTest,
    ::testing::Values(
        FamilyCase{.desc = "ipv6 frontend over ipv4 backends",
                   .svc = service({"0.0.0.0:31400", "[::]:31400"},
                                  {subset("v1", 50, {"127.0.0.1:9001"}), subset("v2", 50, {"127.0.0.1:9002"})}),
                   .want_error = "t.yaml:5: service \"svc\": frontend [::]:31400 takes IPv6 clients, but every backend "
                                 "of the service is IPv4 (127.0.0.1:9001, 127.0.0.1:9002)"},
        FamilyCase{.desc = "ipv4 frontend over ipv6 backends",
                   .svc = service({"0.0.0.0:31400"}, {subset("v1", 1, {"[::1]:9001"})}),
                   .want_error = "frontend 0.0.0.0:31400 takes IPv4 clients, but every backend of the service is IPv6"},
        FamilyCase{.desc = "a weighted subset with no backend of the family",
                   .svc = service({"[::]:31400"}, {subset("v1", 40, {"127.0.0.1:9001", "[::1]:9001"}),
                                                   subset("v2", 60, {"127.0.0.1:9002"})}),
                   .want_error = "subset \"v2\" (weight 60) has only IPv4 backends (127.0.0.1:9002), so its share "
                                 "cannot hold for them"},
        FamilyCase{.desc = "a weight-0 subset may lack the family",
                   .svc = service({"[::]:31400"}, {subset("v1", 100, {"[::1]:9001"}), subset("v2", 0, {"127.0.0.1:9002"})})},
        FamilyCase{.desc = "dual-stack subsets",
                   .svc = service({"0.0.0.0:31400", "[::]:31400"},
                                  {subset("v1", 40, {"127.0.0.1:9001", "[::1]:9001"}),
                                   subset("v2", 60, {"127.0.0.1:9002", "[::1]:9002"})})},
        FamilyCase{.desc = "a weight below one slot",
                   .svc = service({"0.0.0.0:31400"}, {subset("v1", 1, {"127.0.0.1:9001"}), subset("v2", 999999, {"127.0.0.1:9002"})}),
                   .want_error = "backend 127.0.0.1:9001 would take 0.0001% of the IPv4 clients, less than one slot of "
                                 "4093; raise its subset's weight or set it to 0"}),
    [](const ::testing::TestParamInfo<FamilyCase>& info) {
        std::string name = info.param.desc;
        for (auto& ch : name)
            if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
        return name;
    });

// Each family's table keeps every subset's weight, spread over the subset's backends of that
// family: a subset with two IPv6 backends and one IPv4 backend gives its IPv4 backend the
// whole subset share of IPv4 clients.
TEST(PlanFamilies, EverySubsetKeepsItsWeightInEachFamily) {
    auto plan = compile_plan({service({"0.0.0.0:31400", "[::]:31400"},
                                      {subset("v1", 40, {"127.0.0.1:9001", "[::1]:9001", "[::1]:9003"}),
                                       subset("v2", 60, {"127.0.0.1:9002", "[::1]:9002"})})},
                             {}, default_limits());
    ASSERT_TRUE(plan) << plan.error().message;
    const auto v4 = slots_by_address(*plan, AF_INET);
    const auto v6 = slots_by_address(*plan, AF_INET6);
    const double slots = TS_TABLE_SLOTS;
    EXPECT_NEAR(v4.at("127.0.0.1:9001") / slots, 0.40, 1.0 / slots);
    EXPECT_NEAR(v4.at("127.0.0.1:9002") / slots, 0.60, 1.0 / slots);
    EXPECT_EQ(v4.size(), 2u) << "no IPv6 backend in the IPv4 table";
    EXPECT_NEAR(v6.at("[::1]:9001") / slots, 0.20, 1.0 / slots);
    EXPECT_NEAR(v6.at("[::1]:9003") / slots, 0.20, 1.0 / slots);
    EXPECT_NEAR(v6.at("[::1]:9002") / slots, 0.60, 1.0 / slots);
    EXPECT_EQ(v6.size(), 3u);
}

TEST(PlanFamilies, AFamilyWithoutFrontendHasNoTable) {
    auto plan = compile_plan({service({"127.0.0.1:31400"}, {subset("v1", 1, {"127.0.0.1:9001"})})}, {},
                             default_limits());
    ASSERT_TRUE(plan) << plan.error().message;
    EXPECT_EQ(plan->services[0].tables[0].slots.size(), TS_TABLE_SLOTS);
    EXPECT_TRUE(plan->services[0].tables[1].slots.empty());
}

}  // namespace
}  // namespace tcpshift
