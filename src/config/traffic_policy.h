// Istio's trafficPolicy, as tcpshift reads it for TCP: a DestinationRule's (for the host and for
// each subset) and a TrafficShift's spec.policy, which takes the same shape. Every field is
// either honoured or named in a warning (an error with --strict) that says why it is not; a
// value that cannot be served (PASSTHROUGH, a maglev table that is not prime) is refused.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "config/config.h"

namespace tcpshift {

// The parts of one trafficPolicy (or one portLevelSettings entry) that tcpshift applies; a
// part the block leaves out is empty, so that a subset's policy overrides only what it sets.
struct TrafficPolicy {
    std::optional<BalancePolicy> balance;     // loadBalancer
    bool source_ip = false;                   // loadBalancer.consistentHash.useSourceIp
    SourceRef source_ip_where;
    std::optional<KeepalivePolicy> keepalive;  // connectionPool.tcp.tcpKeepalive
    std::optional<ConnectionCap> cap;          // connectionPool.tcp.maxConnections
    // connectionPool.tcp.maxConnectionDuration and idleTimeout, as one part
    std::optional<LifetimePolicy> lifetime;
    std::optional<OutlierPolicy> outlier;      // outlierDetection

    // This policy, with what it leaves out taken from `base`: how a subset's trafficPolicy
    // overrides its host's, block by block.
    TrafficPolicy over(const TrafficPolicy& base) const;
};

// A trafficPolicy with its portLevelSettings. A port's entry replaces the whole policy for
// that port and inherits nothing from the destination level, as Istio documents.
struct DestinationPolicy {
    TrafficPolicy all_ports;
    struct Port {
        uint32_t number = 0;
        TrafficPolicy policy;
        SourceRef where;
    };
    std::vector<Port> ports;

    // The policy for connections to `port`.
    const TrafficPolicy& for_port(uint32_t port) const;
};

// Parses `policy` (may be absent), whose field path is `field` ("spec.trafficPolicy").
Result<DestinationPolicy> parse_destination_policy(const YAML::Node& policy, const std::string& file,
                                                   const std::string& field, Diagnostics& diag);

// Gives `svc` the balance, keepalive, cap, lifetime and outlier parts of `policy`, the effective policy of
// one of its destinations (a part left out: the default): the `first` destination's hold for
// the service, and a later one whose parts differ is warned about, naming both, since one
// policy holds for every backend of a service. `where` is "file:line: field" of the destination.
Result<void> take_policy(const TrafficPolicy& policy, bool first, ServiceSpec& svc, const std::string& where,
                         Diagnostics& diag);

}  // namespace tcpshift
