// How `rebalance` (and `set` with a rebalance policy) reports: a table of each backend's
// connections before and after beside its target, and a summary line; or JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "apply/closing.h"

namespace tcpshift {

nlohmann::json rebalance_json(const std::string& service, const RebalanceOptions& options,
                              const RebalanceReport& report);
void print_rebalance(const std::string& service, const RebalanceOptions& options, const RebalanceReport& report,
                     std::ostream& out);

}  // namespace tcpshift
