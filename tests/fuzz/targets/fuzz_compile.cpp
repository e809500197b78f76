// libFuzzer target: the whole compiler, bytes to the weight tables the maps will hold, with
// the plan's promises checked: tables full and valid, shares true to the weights, and ids
// stable when the same set is compiled again.
#include <algorithm>
#include <cmath>
#include <set>

#include "fuzz_checks.h"
#include "bpf/abi.h"
#include "compile/plan.h"
#include "config/resolve.h"

namespace {

using namespace tcpshift;

// One family's table: full of weighted backends of that family, each within one slot of its
// exact share, and the shares of the family's backends summing to 1.
void check_table(const PlanService& svc, const FamilyTable& table, int family, const PlanLimits& limits) {
    TCPSHIFT_FUZZ_CHECK(table.slots.size() == limits.table_slots);
    TCPSHIFT_FUZZ_CHECK(table.weighted_backends.size() <= limits.max_service_backends);
    std::map<uint16_t, double> share;
    double total = 0;
    for (const auto& subset : svc.subsets)
        for (const auto& backend : subset.backends) {
            TCPSHIFT_FUZZ_CHECK(backend.id < TS_NO_BACKEND);
            TCPSHIFT_FUZZ_CHECK(backend.share >= 0 && backend.share <= 1);
            if (backend.address.family != family) continue;
            share[static_cast<uint16_t>(backend.id)] += backend.share;
            total += backend.share;
        }
    const std::set<uint16_t> weighted(table.weighted_backends.begin(), table.weighted_backends.end());
    TCPSHIFT_FUZZ_CHECK(weighted.size() == table.weighted_backends.size());
    if (weighted.empty()) {
        for (uint16_t slot : table.slots) TCPSHIFT_FUZZ_CHECK(slot == TS_NO_BACKEND);
        return;
    }
    TCPSHIFT_FUZZ_CHECK(std::fabs(total - 1.0) < 1e-9);
    std::map<uint16_t, uint32_t> count;
    for (uint16_t slot : table.slots) {
        TCPSHIFT_FUZZ_CHECK(weighted.contains(slot));
        ++count[slot];
    }
    // Largest-remainder rounding: each backend within one slot of its exact share, and none
    // with a share less than a slot.
    for (uint16_t id : weighted) {
        const double exact = share[id] * limits.table_slots;
        TCPSHIFT_FUZZ_CHECK(std::fabs(count[id] - exact) <= 1.0 + 1e-6);
        TCPSHIFT_FUZZ_CHECK(count[id] >= 1);
    }
}

void check_plan(const Plan& plan, const PlanLimits& limits) {
    TCPSHIFT_FUZZ_CHECK(plan.services.size() <= limits.max_services);
    std::set<uint32_t> service_ids;
    for (const auto& svc : plan.services) {
        TCPSHIFT_FUZZ_CHECK(service_ids.insert(svc.id).second);
        TCPSHIFT_FUZZ_CHECK(svc.id < limits.max_services);
        for (int family : {AF_INET, AF_INET6}) {
            const bool has_frontend = std::any_of(svc.frontends.begin(), svc.frontends.end(),
                                                  [&](const Endpoint& f) { return f.family == family; });
            const FamilyTable& table = svc.tables[family_index(family)];
            TCPSHIFT_FUZZ_CHECK(has_frontend == !table.slots.empty());
            if (has_frontend) check_table(svc, table, family, limits);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Diagnostics diag;
    auto resources = fuzz::parse_input(data, size, diag);
    if (!resources) return 0;
    auto services = fuzz::accepted(resolve_services(*resources, &diag));
    if (!services) return 0;
    const PlanLimits limits = default_limits();
    auto plan = fuzz::accepted(compile_plan(*services, {}, limits), fuzz::Names::kAnything);
    if (!plan) return 0;
    check_plan(*plan, limits);

    // Compiled again with the ids it was given, the same set keeps every id and every table.
    auto again = compile_plan(*services, plan->ids, limits);
    TCPSHIFT_FUZZ_CHECK(again.has_value());
    TCPSHIFT_FUZZ_CHECK(again->ids.services == plan->ids.services);
    TCPSHIFT_FUZZ_CHECK(again->ids.backends == plan->ids.backends);
    for (size_t i = 0; i < plan->services.size(); ++i)
        for (size_t family = 0; family < 2; ++family)
            TCPSHIFT_FUZZ_CHECK(again->services[i].tables[family].slots == plan->services[i].tables[family].slots);
    return 0;
}
