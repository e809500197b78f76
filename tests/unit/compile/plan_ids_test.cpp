// The ids of a plan: a service keeps its id by name and a backend by address across compiles,
// so that live listeners stay registered under the same key; an id freed by one plan is not
// handed out by the next; each family's table holds the ids of its own backends; and the id
// space is bounded by the map sizes and by the empty-slot marker.
#include <gtest/gtest.h>

#include <set>

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

SubsetSpec subset(const std::string& name, uint32_t weight, const std::vector<std::string>& backends) {
    return SubsetSpec{.name = name, .weight = weight, .backends = eps(backends), .where = {.file = "t.yaml", .line = 5}};
}

ServiceSpec service(const std::string& name, const std::vector<std::string>& listen, std::vector<SubsetSpec> subsets) {
    return ServiceSpec{.name = name, .listen = eps(listen), .subsets = std::move(subsets), .where = {.file = "t.yaml", .line = 1}};
}

ServiceSpec service(const std::vector<std::string>& listen, std::vector<SubsetSpec> subsets) {
    return service("svc", listen, std::move(subsets));
}

// Two services over three backends, one of them IPv6.
std::vector<ServiceSpec> two_services() {
    return {service("echo", {"0.0.0.0:31400"},
                    {subset("v1", 1, {"127.0.0.1:9001"}), subset("v2", 1, {"127.0.0.1:9002"})}),
            service("cache", {"[::]:6379"}, {subset("main", 1, {"[::1]:6380"})})};
}

Plan compiled(const std::vector<ServiceSpec>& services, const IdAssignment& previous = {},
              const PlanLimits& limits = default_limits()) {
    auto plan = compile_plan(services, previous, limits);
    EXPECT_TRUE(plan) << plan.error().message;
    return plan ? std::move(*plan) : Plan{};
}

// The id of every backend of `plan`, as its services carry it.
std::map<std::string, uint32_t> backend_ids(const Plan& plan) {
    std::map<std::string, uint32_t> out;
    for (const auto& svc : plan.services)
        for (const auto& s : svc.subsets)
            for (const auto& b : s.backends) out[b.address.str()] = b.id;
    return out;
}

TEST(PlanIds, NewNamesTakeTheLowestIdsInOrder) {
    const Plan plan = compiled(two_services());
    EXPECT_EQ(plan.ids.services, (std::map<std::string, uint32_t>{{"echo", 0}, {"cache", 1}}));
    EXPECT_EQ(plan.ids.backends,
              (std::map<std::string, uint32_t>{{"127.0.0.1:9001", 0}, {"127.0.0.1:9002", 1}, {"[::1]:6380", 2}}));
    EXPECT_EQ(backend_ids(plan), plan.ids.backends) << "the services carry the ids the assignment records";
    EXPECT_EQ(plan.services[1].id, 1u);
}

// Compiled again from its own ids, in another order, a set keeps every id: an id follows the
// service's name and the backend's address, not their place in the configuration.
TEST(PlanIds, IdsFollowNamesAndAddressesAcrossRecompiles) {
    const Plan first = compiled(two_services());
    std::vector<ServiceSpec> reordered = two_services();
    std::swap(reordered[0], reordered[1]);
    std::swap(reordered[1].subsets[0], reordered[1].subsets[1]);
    const Plan second = compiled(reordered, first.ids);
    EXPECT_EQ(second.ids.services, first.ids.services);
    EXPECT_EQ(second.ids.backends, first.ids.backends);
    EXPECT_EQ(second.services[0].id, first.ids.services.at("cache"));
    EXPECT_EQ(backend_ids(second), first.ids.backends);
}

// A backend that moves to another subset is the same listener: it keeps its id.
TEST(PlanIds, ABackendMovedToAnotherSubsetKeepsItsId) {
    const Plan first = compiled({service({"0.0.0.0:31400"}, {subset("v1", 1, {"127.0.0.1:9001", "127.0.0.1:9002"}),
                                                             subset("v2", 1, {"127.0.0.1:9003"})})});
    const Plan second = compiled({service({"0.0.0.0:31400"}, {subset("v1", 1, {"127.0.0.1:9001"}),
                                                              subset("v2", 1, {"127.0.0.1:9003", "127.0.0.1:9002"})})},
                                 first.ids);
    EXPECT_EQ(second.ids.backends, first.ids.backends);
}

// One address in two services is one listener, so one backend id.
TEST(PlanIds, AnAddressSharedByTwoServicesHasOneId) {
    const Plan plan = compiled({service("a", {"0.0.0.0:1000"}, {subset("v1", 1, {"127.0.0.1:9001"})}),
                                service("b", {"0.0.0.0:1001"}, {subset("v1", 1, {"127.0.0.1:9001"})})});
    EXPECT_EQ(plan.ids.backends.size(), 1u);
    EXPECT_EQ(plan.services[0].subsets[0].backends[0].id, plan.services[1].subsets[0].backends[0].id);
}

// A backend whose address or port changes is another listener: it gets a fresh id, and the old
// one is not reused while the maps may still hold the old listener under it.
TEST(PlanIds, AChangedAddressOrPortGetsANewId) {
    const Plan first = compiled(two_services());
    std::vector<ServiceSpec> changed = two_services();
    changed[0].subsets[0].backends = eps({"127.0.0.5:9001"});  // address
    changed[1].subsets[0].backends = eps({"[::1]:6381"});      // port
    const Plan second = compiled(changed, first.ids);
    std::set<uint32_t> old_ids;
    for (const auto& [address, id] : first.ids.backends) old_ids.insert(id);
    EXPECT_FALSE(old_ids.count(second.ids.backends.at("127.0.0.5:9001"))) << "an old id for a new address";
    EXPECT_FALSE(old_ids.count(second.ids.backends.at("[::1]:6381"))) << "an old id for a new port";
    EXPECT_EQ(second.ids.backends.at("127.0.0.1:9002"), first.ids.backends.at("127.0.0.1:9002"));
    EXPECT_FALSE(second.ids.backends.count("127.0.0.1:9001")) << "a gone address is not recorded";
}

// An id freed by a plan is not given to another address in the next one: until that plan is
// installed, the maps still hold the old address's socket and counters under it.
TEST(PlanIds, AFreedIdIsNotReusedByTheNextPlan) {
    auto first = compile_plan({service({"0.0.0.0:31400"}, {subset("v1", 1, {"127.0.0.1:9001"}),
                                                           subset("v2", 1, {"127.0.0.1:9002"})})},
                              {}, default_limits());
    ASSERT_TRUE(first);
    const uint32_t old_v2 = first->ids.backends.at("127.0.0.1:9002");
    auto second = compile_plan({service({"0.0.0.0:31400"}, {subset("v1", 1, {"127.0.0.1:9001"}),
                                                            subset("v2", 1, {"127.0.0.1:9003"})})},
                               first->ids, default_limits());
    ASSERT_TRUE(second);
    EXPECT_EQ(second->ids.backends.at("127.0.0.1:9001"), first->ids.backends.at("127.0.0.1:9001"));
    EXPECT_NE(second->ids.backends.at("127.0.0.1:9003"), old_v2) << "the moved subset got the retired address's id";
    EXPECT_FALSE(second->ids.backends.count("127.0.0.1:9002"));
    // One plan later the id is free again: the install of `second` emptied it.
    auto third = compile_plan({service({"0.0.0.0:31400"}, {subset("v1", 1, {"127.0.0.1:9001"}),
                                                           subset("v2", 1, {"127.0.0.1:9003"}),
                                                           subset("v3", 1, {"127.0.0.1:9004"})})},
                              second->ids, default_limits());
    ASSERT_TRUE(third);
    EXPECT_EQ(third->ids.backends.at("127.0.0.1:9004"), old_v2);
}

TEST(PlanIds, ServiceIdsAreQuarantinedToo) {
    auto first = compile_plan({ServiceSpec{.name = "a", .listen = eps({"0.0.0.0:1000"}),
                                           .subsets = {subset("v1", 1, {"127.0.0.1:9001"})}}},
                              {}, default_limits());
    ASSERT_TRUE(first);
    auto second = compile_plan({ServiceSpec{.name = "b", .listen = eps({"0.0.0.0:1000"}),
                                            .subsets = {subset("v1", 1, {"127.0.0.1:9001"})}}},
                               first->ids, default_limits());
    ASSERT_TRUE(second);
    EXPECT_NE(second->services[0].id, first->services[0].id);
}

// The ids that a plan quarantines count against the map size: rather than hand one out, the
// plan is refused, and the next one (the quarantined address gone from the record) fits.
TEST(PlanIds, QuarantinedIdsCountAgainstTheLimit) {
    PlanLimits limits = default_limits();
    limits.max_backends = 2;
    const Plan first = compiled({service({"0.0.0.0:31400"}, {subset("v1", 1, {"127.0.0.1:9001", "127.0.0.1:9002"})})},
                                {}, limits);
    const std::vector<ServiceSpec> moved = {
        service({"0.0.0.0:31400"}, {subset("v1", 1, {"127.0.0.1:9001", "127.0.0.1:9003"})})};
    auto refused = compile_plan(moved, first.ids, limits);
    ASSERT_FALSE(refused) << "handed out the id of 127.0.0.1:9002 while the maps may still hold it";
    EXPECT_EQ(refused.error().message, "t.yaml:5: backend 127.0.0.1:9003: a network namespace holds at most 2 backends");
    const IdAssignment installed{.services = first.ids.services, .backends = {{"127.0.0.1:9001", 0}}};
    const Plan later = compiled(moved, installed, limits);
    EXPECT_EQ(later.ids.backends.at("127.0.0.1:9003"), first.ids.backends.at("127.0.0.1:9002"));
}

TEST(PlanIds, MoreBackendsThanTheMapsHoldAreRefused) {
    PlanLimits limits = default_limits();
    limits.max_backends = 2;
    auto plan = compile_plan(
        {service({"0.0.0.0:31400"}, {subset("v1", 1, {"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"})})}, {},
        limits);
    ASSERT_FALSE(plan);
    EXPECT_EQ(plan.error().kind, ErrorKind::kConfig);
    EXPECT_EQ(plan.error().message, "t.yaml:5: backend 127.0.0.1:9003: a network namespace holds at most 2 backends");
}

// An id at or above a (lowered) limit does not fit the maps: the address gets one that does.
TEST(PlanIds, AnIdBeyondTheLimitIsGivenUp) {
    PlanLimits limits = default_limits();
    limits.max_backends = 4;
    limits.max_services = 4;
    const IdAssignment previous{.services = {{"svc", 9}}, .backends = {{"127.0.0.1:9001", 7}}};
    const Plan plan = compiled({service({"0.0.0.0:31400"}, {subset("v1", 1, {"127.0.0.1:9001"})})}, previous, limits);
    EXPECT_LT(plan.ids.backends.at("127.0.0.1:9001"), 4u);
    EXPECT_LT(plan.services[0].id, 4u);
}

// Backend id TS_NO_BACKEND marks an empty slot of a weight table, so no backend may have it,
// even where the maps would hold more and a previous assignment gave it out.
TEST(PlanIds, TheEmptySlotMarkerIsNeverABackendId) {
    PlanLimits limits = default_limits();
    limits.max_backends = TS_NO_BACKEND + 1;
    const IdAssignment previous{.backends = {{"127.0.0.1:9001", TS_NO_BACKEND}}};
    const Plan plan = compiled({service({"0.0.0.0:31400"}, {subset("v1", 1, {"127.0.0.1:9001"})})}, previous, limits);
    EXPECT_NE(plan.ids.backends.at("127.0.0.1:9001"), TS_NO_BACKEND);
    for (uint16_t slot : plan.services[0].tables[0].slots) ASSERT_NE(slot, TS_NO_BACKEND);
}

// A damaged record that gives two addresses one id must not make them share it: the first
// keeps it, the other gets a free one.
TEST(PlanIds, TwoNamesThatClaimOneIdDoNotShareIt) {
    const IdAssignment previous{.services = {{"a", 0}, {"b", 0}},
                                .backends = {{"127.0.0.1:9001", 3}, {"127.0.0.1:9002", 3}}};
    const Plan plan = compiled({service("a", {"0.0.0.0:1000"}, {subset("v1", 1, {"127.0.0.1:9001"})}),
                                service("b", {"0.0.0.0:1001"}, {subset("v1", 1, {"127.0.0.1:9002"})})},
                               previous);
    EXPECT_EQ(plan.ids.services.at("a"), 0u);
    EXPECT_NE(plan.ids.services.at("b"), 0u);
    EXPECT_EQ(plan.ids.backends.at("127.0.0.1:9001"), 3u);
    EXPECT_NE(plan.ids.backends.at("127.0.0.1:9002"), 3u);
}

// Each family's table holds only the ids of backends of its family, and every weighted
// backend of the family appears in it under the id the assignment records.
TEST(PlanIds, EachFamilysTableHoldsTheIdsOfItsOwnBackends) {
    const Plan plan = compiled({service({"0.0.0.0:31400", "[::]:31400"},
                                        {subset("v1", 1, {"127.0.0.1:9001", "[::1]:9001"}),
                                         subset("v2", 1, {"127.0.0.1:9002", "[::1]:9002"})})});
    const auto& ids = plan.ids.backends;
    ASSERT_EQ(ids.size(), 4u);
    const std::set<uint32_t> v4 = {ids.at("127.0.0.1:9001"), ids.at("127.0.0.1:9002")};
    const std::set<uint32_t> v6 = {ids.at("[::1]:9001"), ids.at("[::1]:9002")};
    for (int family : {AF_INET, AF_INET6}) {
        const FamilyTable& table = plan.services[0].tables[family_index(family)];
        const std::set<uint32_t>& own = family == AF_INET ? v4 : v6;
        const std::set<uint32_t> in_slots(table.slots.begin(), table.slots.end());
        const std::set<uint32_t> weighted(table.weighted_backends.begin(), table.weighted_backends.end());
        EXPECT_EQ(in_slots, own) << (family == AF_INET ? "IPv4" : "IPv6");
        EXPECT_EQ(weighted, own) << (family == AF_INET ? "IPv4" : "IPv6");
    }
}

}  // namespace
}  // namespace tcpshift
