// What each backend's closed connections measured in the kernel, for `stats`: failures by
// reason, RTT and lifetime quantiles (as the bounds of the histograms' buckets), retransmits.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>

#include "compile/plan.h"
#include "report/report.h"

namespace tcpshift {

nlohmann::json sli_json(const StatsFacts& facts, uint32_t backend_id);
// A table of the service's backends: their failures by reason, resets, retransmits, RTT and
// lifetimes.
void print_sli(const PlanService& svc, const StatsFacts& facts, std::ostream& out);

}  // namespace tcpshift
