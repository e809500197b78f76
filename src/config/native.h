// The native resource, tcpshift.io/v1alpha1 TrafficShift: one service written out in full,
// its frontends, affinity, outlier detection, policy (Istio's trafficPolicy) and weighted
// subsets of backend addresses.
#pragma once

#include "config/config.h"

namespace tcpshift {

// One TrafficShift into its service. Every field is checked here, with file:line and the
// field path in the error; what spans services (names, frontends) is validate_services' job.
// Policy fields tcpshift does not honour are warned about in `diag`.
Result<ServiceSpec> parse_traffic_shift(const Resource& r, Diagnostics& diag);

}  // namespace tcpshift
