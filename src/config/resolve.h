// From resources to services: the native TrafficShift and the Istio and Gateway API kinds
// resolved together, then validated as one set. The top of the config layer: it sees the
// parsers of every kind, and none of them sees it.
#pragma once

#include <vector>

#include "config/config.h"

namespace tcpshift {

// Turns the accepted resources into services and validates the whole set.
Result<std::vector<ServiceSpec>> resolve_services(const std::vector<Resource>& resources,
                                                  Diagnostics* diagnostics = nullptr);

// Validates the whole set: names, weights, frontends claimed twice, and frontends that cover
// a backend (its address, or the wildcard of its family, on its port), which would take the
// clients that connect to that backend directly, unless the frontend's service says takeover.
Result<void> validate_services(const std::vector<ServiceSpec>& services);

}  // namespace tcpshift
