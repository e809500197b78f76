#include "config/traffic_policy.h"

#include <algorithm>
#include <initializer_list>
#include <tuple>

#include "config/duration.h"
#include "config/yaml_fields.h"

namespace tcpshift {

namespace {

Result<void> warn_ignored(const YAML::Node& holder, std::initializer_list<const char*> names,
                          const std::string& file, const std::string& field, const std::string& why,
                          Diagnostics& diag) {
    for (const char* name : names) {
        if (!holder[name]) continue;
        if (auto ok = diag.warn(at(holder[name], file) + ": " + field + "." + name + ": " + why); !ok)
            return fail(ok.error());
    }
    return {};
}

// outlierDetection. For TCP, Envoy counts a failed connection both as a 5xx and as a gateway
// error, so whichever threshold is reached first ejects: the smaller of the enabled ones.
// consecutive5xxErrors is 5 when left out, consecutiveGatewayErrors off; 0 disables either.
// What has no meaning without a proxy's sweep is warned about.
Result<OutlierPolicy> parse_outlier_detection(const YAML::Node& policy, const std::string& file,
                                              const std::string& field, Diagnostics& diag) {
    const YAML::Node od = policy["outlierDetection"];
    if (auto ok = check_fields(od,
                               {"consecutive5xxErrors", "consecutiveGatewayErrors", "baseEjectionTime", "interval",
                                "maxEjectionPercent", "minHealthPercent", "splitExternalLocalOriginErrors",
                                "consecutiveLocalOriginFailures", "consecutiveErrors"},
                               file, field + ".");
        !ok)
        return fail(ok.error());
    if (auto ok = warn_ignored(od, {"interval"}, file, field,
                               "ignored; a failed connection is counted as it happens, with no sweep", diag);
        !ok)
        return fail(ok.error());
    if (auto ok = warn_ignored(od, {"splitExternalLocalOriginErrors", "consecutiveLocalOriginFailures"}, file, field,
                               "ignored; for TCP every failure is a failed connection, counted by "
                               "consecutive5xxErrors and consecutiveGatewayErrors",
                               diag);
        !ok)
        return fail(ok.error());
    if (auto ok = warn_ignored(od, {"consecutiveErrors"}, file, field,
                               "ignored; deprecated by Istio: use consecutive5xxErrors", diag);
        !ok)
        return fail(ok.error());

    OutlierPolicy outlier{.max_ejection_percent = kDefaultMaxEjectionPercent,
                          .where = {file, key_line_of(policy, "outlierDetection")}};
    if (od["maxEjectionPercent"]) {
        auto n = scalar_int(od["maxEjectionPercent"], file, field + ".maxEjectionPercent", 0, 100);
        if (!n) return fail(n.error());
        outlier.max_ejection_percent = static_cast<uint32_t>(*n);
    }
    if (od["minHealthPercent"]) {
        auto n = scalar_int(od["minHealthPercent"], file, field + ".minHealthPercent", 0, 100);
        if (!n) return fail(n.error());
        outlier.min_health_percent = static_cast<uint32_t>(*n);
    }
    uint32_t five_xx = outlier.consecutive_errors, gateway = 0;
    for (auto [name, value] :
         {std::pair{"consecutive5xxErrors", &five_xx}, std::pair{"consecutiveGatewayErrors", &gateway}}) {
        if (!od[name]) continue;
        auto n = scalar_int(od[name], file, field + "." + name, 0, UINT32_MAX);
        if (!n) return fail(n.error());
        *value = static_cast<uint32_t>(*n);
    }
    outlier.consecutive_errors = five_xx && gateway ? std::min(five_xx, gateway) : std::max(five_xx, gateway);
    if (const YAML::Node t = od["baseEjectionTime"]) {
        auto ms = scalar_duration_ms(t, file, field + ".baseEjectionTime", kMinBaseEjectionMs, kMaxBaseEjectionMs);
        if (!ms) return fail(ms.error());
        outlier.base_ejection_ms = *ms;
    }
    return outlier;
}

bool is_prime(uint32_t n) {
    if (n < 2) return false;
    for (uint32_t d = 2; d * d <= n; ++d)
        if (n % d == 0) return false;
    return true;
}

// consistentHash.maglev.tableSize, or ringHash.minimumRingSize: the slots of the hashing
// table. Envoy requires a prime; tcpshift's tables hold at most kMaxTableSlots.
Result<uint32_t> parse_table_size(const YAML::Node& size, const std::string& file, const std::string& field,
                                  bool ring, Diagnostics& diag) {
    auto n = scalar_int(size, file, field, 1, UINT32_MAX);
    if (!n) return fail(n.error());
    if (*n > kMaxTableSlots) {
        if (auto ok = diag.warn(at(size, file) + ": " + field + ": " + std::to_string(*n) +
                                " slots; a tcpshift table holds at most " + std::to_string(kMaxTableSlots) +
                                ", which it uses (each slot is 1/" + std::to_string(kMaxTableSlots) +
                                " of the connections)");
            !ok)
            return fail(ok.error());
        return uint32_t{kMaxTableSlots};
    }
    if (ring) {
        // A ring's size need not be prime: the Maglev table takes the next prime at or above it.
        uint32_t prime = static_cast<uint32_t>(*n);
        while (!is_prime(prime)) ++prime;
        return prime;
    }
    if (!is_prime(static_cast<uint32_t>(*n)))
        return fail(config_error(at(size, file) + ": " + field + ": " + std::to_string(*n) +
                                 " is not a prime; a Maglev table's size must be one, as Envoy requires "
                                 "(e.g. 7, 251, 1021, 4093)"));
    return static_cast<uint32_t>(*n);
}

// loadBalancer.consistentHash: useSourceIp and the table size; HTTP hash keys are warned about.
Result<void> parse_consistent_hash(const YAML::Node& hash, const std::string& file, const std::string& field,
                                   TrafficPolicy& out, Diagnostics& diag) {
    if (auto ok = check_fields(hash,
                               {"httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName", "ringHash",
                                "maglev", "minimumRingSize"},
                               file, field + ".");
        !ok)
        return fail(ok.error());
    if (auto ok = warn_ignored(hash, {"httpHeaderName", "httpCookie", "httpQueryParameterName"}, file, field,
                               "ignored; hashing on HTTP needs a proxy: tcpshift hashes the connection's 4-tuple "
                               "(or its source address with useSourceIp)",
                               diag);
        !ok)
        return fail(ok.error());
    if (const YAML::Node ip = hash["useSourceIp"]) {
        auto on = scalar_bool(ip, file, field + ".useSourceIp");
        if (!on) return fail(on.error());
        out.source_ip = *on;
        if (*on) out.source_ip_where = {file, line_of(ip)};
    }
    const YAML::Node maglev = hash["maglev"], ring = hash["ringHash"];
    if (maglev && ring)
        return fail(config_error(at(ring, file) + ": " + field + ": maglev and ringHash are alternatives; set one"));
    YAML::Node size;  // a default Node converts to true: `has_size` says whether one was given
    bool has_size = true;
    std::string size_field;
    if (maglev) {
        if (auto ok = check_fields(maglev, {"tableSize"}, file, field + ".maglev."); !ok) return fail(ok.error());
        size = maglev["tableSize"];
        size_field = field + ".maglev.tableSize";
    } else if (ring) {
        if (auto ok = check_fields(ring, {"minimumRingSize"}, file, field + ".ringHash."); !ok) return fail(ok.error());
        diag.notes.push_back(at(ring, file) + ": " + field +
                             ".ringHash: served by a Maglev table, which spreads keys as evenly and moves as few "
                             "of them when a backend comes or goes");
        size = ring["minimumRingSize"];
        size_field = field + ".ringHash.minimumRingSize";
    } else if (hash["minimumRingSize"]) {
        size = hash["minimumRingSize"];
        size_field = field + ".minimumRingSize";
    } else {
        has_size = false;
    }
    if (has_size && size.IsDefined()) {
        auto slots = parse_table_size(size, file, size_field, !maglev, diag);
        if (!slots) return fail(slots.error());
        out.balance->table_size = *slots;
    }
    return {};
}

// loadBalancer.warmup (duration, minimumPercent, aggression), or the older warmupDurationSecs
// (a duration, with the defaults); warmup wins when both are written, as in Istio.
Result<WarmupPolicy> parse_warmup(const YAML::Node& lb, const std::string& file, const std::string& field,
                                  Diagnostics& diag) {
    WarmupPolicy warmup;
    const YAML::Node block = lb["warmup"], secs = lb["warmupDurationSecs"];
    if (block && secs) {
        if (auto ok = diag.warn(at(secs, file) + ": " + field + ".warmupDurationSecs: ignored; warmup is written too, "
                                "and takes precedence");
            !ok)
            return fail(ok.error());
    }
    if (!block && !secs) return warmup;
    if (!block) {
        auto ms = scalar_duration_ms(secs, file, field + ".warmupDurationSecs", kMinWarmupMs, kMaxWarmupMs);
        if (!ms) return fail(ms.error());
        warmup.duration_ms = *ms;
        warmup.where = {file, line_of(secs)};
        return warmup;
    }
    const std::string wfield = field + ".warmup";
    if (auto ok = check_fields(block, {"duration", "minimumPercent", "aggression"}, file, wfield + "."); !ok)
        return fail(ok.error());
    if (!block["duration"])
        return fail(config_error(at(block, file) + ": " + wfield + ".duration: required, e.g. duration: 60s"));
    auto ms = scalar_duration_ms(block["duration"], file, wfield + ".duration", kMinWarmupMs, kMaxWarmupMs);
    if (!ms) return fail(ms.error());
    warmup.duration_ms = *ms;
    if (block["minimumPercent"]) {
        auto p = scalar_double(block["minimumPercent"], file, wfield + ".minimumPercent", 0, 100);
        if (!p) return fail(p.error());
        warmup.min_percent = *p;
    }
    if (block["aggression"]) {
        auto a = scalar_double(block["aggression"], file, wfield + ".aggression", kMinAggression, kMaxAggression);
        if (!a) return fail(a.error());
        warmup.aggression = *a;
    }
    warmup.where = {file, key_line_of(lb, "warmup")};
    return warmup;
}

// loadBalancer: simple, or consistentHash; the rest is warned about.
Result<void> parse_load_balancer(const YAML::Node& holder, const std::string& file, const std::string& field,
                                 TrafficPolicy& out, Diagnostics& diag) {
    const YAML::Node lb = holder["loadBalancer"];
    if (!lb) return {};
    if (auto ok = check_fields(lb, {"simple", "consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup"},
                               file, field + ".");
        !ok)
        return fail(ok.error());
    out.balance = BalancePolicy{.where = {file, key_line_of(holder, "loadBalancer")}};
    if (auto ok = warn_ignored(lb, {"localityLbSetting"}, file, field,
                               "ignored; the backends of one host share its locality", diag);
        !ok)
        return fail(ok.error());
    const YAML::Node simple = lb["simple"], hash = lb["consistentHash"];
    if (simple && hash)
        return fail(config_error(at(hash, file) + ": " + field + ": simple and consistentHash are alternatives; set one"));
    if (hash) {
        if (auto ok = warn_ignored(lb, {"warmupDurationSecs", "warmup"}, file, field,
                                   "ignored with consistentHash: a flow keeps the backend its hash names, as "
                                   "Envoy's hashing balancers ignore slow start",
                                   diag);
            !ok)
            return fail(ok.error());
        return parse_consistent_hash(hash, file, field + ".consistentHash", out, diag);
    }
    auto warmup = parse_warmup(lb, file, field, diag);
    if (!warmup) return fail(warmup.error());
    out.balance->warmup = *warmup;
    if (!simple) return {};
    auto mode = scalar_string(simple, file, field + ".simple");
    if (!mode) return fail(mode.error());
    const std::string where = at(simple, file) + ": " + field + ".simple: ";
    if (*mode == "RANDOM") {
        out.balance->mode = Balance::kRandom;
    } else if (*mode == "ROUND_ROBIN") {
        out.balance->mode = Balance::kRoundRobin;
    } else if (*mode == "UNSPECIFIED") {
    } else if (*mode == "LEAST_REQUEST" || *mode == "LEAST_CONN") {
        // For TCP a request is a connection: both pick the backend with fewer active ones.
        out.balance->mode = Balance::kLeastConn;
    } else if (*mode == "PASSTHROUGH") {
        return fail(config_error(where + "PASSTHROUGH sends a connection to the address the client asked for, "
                                 "which is the frontend itself; tcpshift steers to the subsets' backends: use "
                                 "ROUND_ROBIN, RANDOM or leave it out"));
    } else {
        return fail(config_error(where + "\"" + *mode +
                                 "\" is not UNSPECIFIED, RANDOM, ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN or PASSTHROUGH"));
    }
    return {};
}

// A keepalive duration in whole seconds, as the kernel takes it; a fraction rounds up.
Result<uint32_t> keepalive_seconds(const YAML::Node& node, const std::string& file, const std::string& field) {
    auto ms = scalar_duration_ms(node, file, field, 1, uint64_t{kMaxKeepaliveSeconds} * 1000);
    if (!ms) return fail(ms.error());
    return static_cast<uint32_t>((*ms + 999) / 1000);
}

// connectionPool: tcp.tcpKeepalive; the rest is warned about.
Result<void> parse_connection_pool(const YAML::Node& holder, const std::string& file, const std::string& field,
                                   TrafficPolicy& out, Diagnostics& diag) {
    const YAML::Node pool = holder["connectionPool"];
    if (!pool) return {};
    if (auto ok = check_fields(pool, {"tcp", "http"}, file, field + "."); !ok) return fail(ok.error());
    if (auto ok = warn_ignored(pool, {"http"}, file, field, "ignored; HTTP settings need a proxy", diag); !ok)
        return fail(ok.error());
    const YAML::Node tcp = pool["tcp"];
    if (!tcp) return {};
    const std::string tfield = field + ".tcp";
    if (auto ok = check_fields(tcp,
                               {"maxConnections", "connectTimeout", "tcpKeepalive", "maxConnectionDuration",
                                "idleTimeout"},
                               file, tfield + ".");
        !ok)
        return fail(ok.error());
    if (auto ok = warn_ignored(tcp, {"connectTimeout"}, file, tfield,
                               "ignored; no proxy connects on the client's behalf: the client's own connect "
                               "timeout holds",
                               diag);
        !ok)
        return fail(ok.error());
    if (const YAML::Node max = tcp["maxConnections"]) {
        // 0 leaves the cap unset, as Istio reads it.
        auto n = scalar_int(max, file, tfield + ".maxConnections", 0, UINT32_MAX);
        if (!n) return fail(n.error());
        out.cap = ConnectionCap{.max_connections = static_cast<uint32_t>(*n), .where = {file, line_of(max)}};
    }
    if (tcp["maxConnectionDuration"] || tcp["idleTimeout"]) {
        LifetimePolicy lifetime{.where = {file, key_line_of(pool, "tcp")}};
        for (auto [name, value, where] :
             {std::tuple{"maxConnectionDuration", &lifetime.max_duration_ms, &lifetime.duration_where},
              std::tuple{"idleTimeout", &lifetime.idle_timeout_ms, &lifetime.idle_where}}) {
            if (!tcp[name]) continue;
            auto ms = scalar_duration_ms(tcp[name], file, tfield + "." + name, kMinLifetimeMs, kMaxLifetimeMs);
            if (!ms) return fail(ms.error());
            *value = *ms;
            *where = {file, key_line_of(tcp, name)};
        }
        out.lifetime = lifetime;
    }
    const YAML::Node ka = tcp["tcpKeepalive"];
    if (!ka) return {};
    const std::string kfield = tfield + ".tcpKeepalive";
    if (auto ok = check_fields(ka, {"time", "interval", "probes"}, file, kfield + "."); !ok) return fail(ok.error());
    KeepalivePolicy keepalive{.enabled = true, .where = {file, key_line_of(tcp, "tcpKeepalive")}};
    for (auto [name, value] : {std::pair{"time", &keepalive.time_s}, std::pair{"interval", &keepalive.interval_s}}) {
        if (!ka[name]) continue;
        auto s = keepalive_seconds(ka[name], file, kfield + "." + name);
        if (!s) return fail(s.error());
        *value = *s;
    }
    if (const YAML::Node probes = ka["probes"]) {
        auto n = scalar_int(probes, file, kfield + ".probes", 1, kMaxKeepaliveProbes);
        if (!n) return fail(n.error());
        keepalive.probes = static_cast<uint32_t>(*n);
    }
    out.keepalive = keepalive;
    return {};
}

// One trafficPolicy block, or one portLevelSettings entry (`port_level`).
Result<TrafficPolicy> parse_policy_block(const YAML::Node& policy, const std::string& file, const std::string& field,
                                         bool port_level, Diagnostics& diag) {
    TrafficPolicy out;
    if (port_level) {
        if (auto ok = check_fields(policy, {"port", "loadBalancer", "connectionPool", "outlierDetection", "tls"}, file,
                                   field + ".");
            !ok)
            return fail(ok.error());
    } else if (auto ok = check_fields(policy,
                                      {"loadBalancer", "connectionPool", "outlierDetection", "tls",
                                       "portLevelSettings", "tunnel", "proxyProtocol"},
                                      file, field + ".");
               !ok) {
        return fail(ok.error());
    }
    if (auto ok = warn_ignored(policy, {"tls", "tunnel", "proxyProtocol"}, file, field,
                               "not honoured; tcpshift hands the client's own connection to the backend, with no "
                               "proxy to wrap it",
                               diag);
        !ok)
        return fail(ok.error());
    if (policy["outlierDetection"]) {
        auto outlier = parse_outlier_detection(policy, file, field + ".outlierDetection", diag);
        if (!outlier) return fail(outlier.error());
        out.outlier = *outlier;
    }
    if (auto ok = parse_load_balancer(policy, file, field + ".loadBalancer", out, diag); !ok) return fail(ok.error());
    if (auto ok = parse_connection_pool(policy, file, field + ".connectionPool", out, diag); !ok)
        return fail(ok.error());
    return out;
}

std::string origin(const SourceRef& where) { return where.file.empty() ? "the default" : where.str(); }

template <typename T>
Result<void> take_part(const std::optional<T>& part, bool first, T& held, const char* what,
                       const std::string& svc_name, const std::string& where, Diagnostics& diag) {
    const T given = part.value_or(T{});
    if (first) {
        held = given;
        return {};
    }
    if (given == held) return {};
    return diag.warn(where + ": the " + what + " of this destination (" + origin(given.where) +
                     ") differs from the one service " + svc_name + " takes (" + origin(held.where) +
                     "); one policy holds for every backend of a service: the first destination's");
}

}  // namespace

TrafficPolicy TrafficPolicy::over(const TrafficPolicy& base) const {
    TrafficPolicy out = base;
    if (balance) {
        out.balance = balance;
        out.source_ip = source_ip;
        out.source_ip_where = source_ip_where;
    }
    if (keepalive) out.keepalive = keepalive;
    if (cap) out.cap = cap;
    if (lifetime) out.lifetime = lifetime;
    if (outlier) out.outlier = outlier;
    return out;
}

const TrafficPolicy& DestinationPolicy::for_port(uint32_t port) const {
    for (const auto& p : ports)
        if (p.number == port) return p.policy;
    return all_ports;
}

Result<DestinationPolicy> parse_destination_policy(const YAML::Node& policy, const std::string& file,
                                                   const std::string& field, Diagnostics& diag) {
    DestinationPolicy out;
    if (!policy || policy.IsNull()) return out;
    if (!policy.IsMap()) return fail(config_error(at(policy, file) + ": " + field + ": must be a mapping"));
    auto all = parse_policy_block(policy, file, field, false, diag);
    if (!all) return fail(all.error());
    out.all_ports = *all;
    const YAML::Node ports = policy["portLevelSettings"];
    if (!ports) return out;
    if (!ports.IsSequence())
        return fail(config_error(at(ports, file) + ": " + field + ".portLevelSettings: must be a list"));
    for (size_t i = 0; i < ports.size(); ++i) {
        const std::string pfield = field + ".portLevelSettings[" + std::to_string(i) + "]";
        const YAML::Node entry = ports[i];
        if (!entry.IsMap()) return fail(config_error(at(entry, file) + ": " + pfield + ": must be a mapping"));
        const YAML::Node port = entry["port"];
        if (!port) return fail(config_error(at(entry, file) + ": " + pfield + ".port: missing"));
        if (auto ok = check_fields(port, {"number"}, file, pfield + ".port."); !ok) return fail(ok.error());
        auto number = scalar_int(port["number"], file, pfield + ".port.number", 1, 65535);
        if (!number) return fail(number.error());
        for (const auto& seen : out.ports)
            if (seen.number == *number)
                return fail(config_error(at(entry, file) + ": " + pfield + ".port.number: port " +
                                         std::to_string(*number) + " has settings already at " + seen.where.str()));
        auto block = parse_policy_block(entry, file, pfield, true, diag);
        if (!block) return fail(block.error());
        out.ports.push_back({static_cast<uint32_t>(*number), *block, {file, line_of(entry)}});
    }
    return out;
}

Result<void> take_policy(const TrafficPolicy& policy, bool first, ServiceSpec& svc, const std::string& where,
                         Diagnostics& diag) {
    if (auto ok = take_part(policy.outlier, first, svc.outlier, "outlierDetection", svc.name, where, diag); !ok)
        return ok;
    if (auto ok = take_part(policy.balance, first, svc.balance, "loadBalancer", svc.name, where, diag); !ok)
        return ok;
    if (auto ok = take_part(policy.keepalive, first, svc.keepalive, "tcpKeepalive", svc.name, where, diag); !ok)
        return ok;
    if (auto ok = take_part(policy.lifetime, first, svc.lifetime, "maxConnectionDuration and idleTimeout", svc.name,
                            where, diag);
        !ok)
        return ok;
    return take_part(policy.cap, first, svc.cap, "maxConnections", svc.name, where, diag);
}

}  // namespace tcpshift
