#include "config/native.h"

#include <cstdint>

#include "config/traffic_policy.h"
#include "config/yaml_fields.h"

namespace tcpshift {

namespace {

Result<void> parse_listen(const YAML::Node& spec, const std::string& file, ServiceSpec& svc) {
    const YAML::Node listen = spec["listen"];
    if (!listen || !listen.IsSequence() || listen.size() == 0)
        return fail(config_error(at(spec, file) + ": spec.listen: needs at least one ADDRESS:PORT"));
    for (size_t i = 0; i < listen.size(); ++i) {
        const std::string field = "spec.listen[" + std::to_string(i) + "]";
        auto text = scalar_string(listen[i], file, field);
        if (!text) return fail(text.error());
        auto ep = parse_endpoint(*text);
        if (!ep) return fail(config_error(at(listen[i], file) + ": " + field + ": " + ep.error().message));
        svc.listen.push_back(*ep);
        svc.listen_where.push_back({file, line_of(listen[i])});
    }
    return {};
}

// spec.affinity and spec.takeover, both optional.
Result<void> parse_options(const YAML::Node& spec, const std::string& file, ServiceSpec& svc) {
    if (const YAML::Node aff = spec["affinity"]) {
        auto text = scalar_string(aff, file, "spec.affinity");
        if (!text) return fail(text.error());
        svc.affinity_where = {file, line_of(aff)};
        if (*text == "source-ip") {
            svc.affinity = Affinity::kSourceIp;
        } else if (*text != "none") {
            return fail(config_error(at(aff, file) + ": spec.affinity: \"" + *text + "\" is not none or source-ip"));
        }
    }
    if (const YAML::Node takeover = spec["takeover"]) {
        auto value = scalar_bool(takeover, file, "spec.takeover");
        if (!value) return fail(value.error());
        svc.takeover = *value;
    }
    return {};
}

// spec.outlierDetection: how many failed connections in a row eject a backend, for how long,
// how many of the service's backends may be out at once, and below what share of available
// backends ejections are ignored; a field left out keeps its
// default (Istio's maxEjectionPercent 10, once the block is written).
Result<void> parse_outlier(const YAML::Node& spec, const std::string& file, ServiceSpec& svc) {
    const YAML::Node od = spec["outlierDetection"];
    if (!od || od.IsNull()) return {};
    if (!od.IsMap()) return fail(config_error(at(od, file) + ": spec.outlierDetection: must be a mapping"));
    if (auto ok = check_fields(od, {"consecutiveErrors", "baseEjectionTime", "maxEjectionPercent", "minHealthPercent"},
                               file,
                               "spec.outlierDetection.");
        !ok)
        return fail(ok.error());
    svc.outlier.where = {file, key_line_of(spec, "outlierDetection")};
    svc.outlier.max_ejection_percent = kDefaultMaxEjectionPercent;
    if (const YAML::Node n = od["maxEjectionPercent"]) {
        auto percent = scalar_int(n, file, "spec.outlierDetection.maxEjectionPercent", 0, 100);
        if (!percent) return fail(percent.error());
        svc.outlier.max_ejection_percent = static_cast<uint32_t>(*percent);
    }
    if (const YAML::Node n = od["minHealthPercent"]) {
        auto percent = scalar_int(n, file, "spec.outlierDetection.minHealthPercent", 0, 100);
        if (!percent) return fail(percent.error());
        svc.outlier.min_health_percent = static_cast<uint32_t>(*percent);
    }
    if (const YAML::Node n = od["consecutiveErrors"]) {
        auto errors = scalar_int(n, file, "spec.outlierDetection.consecutiveErrors", 0, UINT32_MAX);
        if (!errors) return fail(errors.error());
        svc.outlier.consecutive_errors = static_cast<uint32_t>(*errors);
    }
    if (const YAML::Node t = od["baseEjectionTime"]) {
        auto ms = scalar_duration_ms(t, file, "spec.outlierDetection.baseEjectionTime", kMinBaseEjectionMs,
                                     kMaxBaseEjectionMs);
        if (!ms) return fail(ms.error());
        svc.outlier.base_ejection_ms = *ms;
    }
    return {};
}

// spec.policy: Istio's trafficPolicy, for the service's frontend port. A service has one
// policy, so port settings that give its frontend ports different ones are refused, and so is
// a part that spec.affinity or spec.outlierDetection sets already.
Result<void> parse_policy(const YAML::Node& spec, const std::string& file, ServiceSpec& svc, Diagnostics& diag) {
    const YAML::Node node = spec["policy"];
    if (!node) return {};
    auto policy = parse_destination_policy(node, file, "spec.policy", diag);
    if (!policy) return fail(policy.error());
    const TrafficPolicy& first = policy->for_port(svc.listen.front().port);
    for (const auto& ep : svc.listen) {
        const TrafficPolicy& p = policy->for_port(ep.port);
        if (&p != &first)
            return fail(config_error(at(node, file) + ": spec.policy.portLevelSettings: frontends " +
                                     svc.listen.front().str() + " and " + ep.str() +
                                     " would get different policies, and a service has one; split it into a "
                                     "TrafficShift per port"));
    }
    if (first.balance && spec["affinity"])
        return fail(config_error(at(node, file) + ": spec.policy.loadBalancer: spec.affinity (line " +
                                 std::to_string(line_of(spec["affinity"])) +
                                 ") sets the load balancing already; set one of them"));
    if (first.outlier && spec["outlierDetection"])
        return fail(config_error(at(node, file) + ": spec.policy.outlierDetection: spec.outlierDetection (line " +
                                 std::to_string(line_of(spec["outlierDetection"])) + ") is set already; set one of them"));
    if (first.source_ip) {
        svc.affinity = Affinity::kSourceIp;
        svc.affinity_where = first.source_ip_where;
    }
    if (first.outlier) svc.outlier = *first.outlier;
    if (first.balance) svc.balance = *first.balance;
    if (first.keepalive) svc.keepalive = *first.keepalive;
    if (first.cap) svc.cap = *first.cap;
    if (first.lifetime) svc.lifetime = *first.lifetime;
    return {};
}

// spec.rebalance: `true`, or {rate: N, max: K}: after `set` or `apply` changes the weights,
// the excess connections of the backends above their new share are closed, as
// `tcpshift rebalance` does.
Result<void> parse_rebalance(const YAML::Node& spec, const std::string& file, ServiceSpec& svc) {
    const YAML::Node node = spec["rebalance"];
    if (!node || node.IsNull()) return {};
    svc.rebalance.where = {file, key_line_of(spec, "rebalance")};
    if (node.IsScalar()) {
        auto on = scalar_bool(node, file, "spec.rebalance");
        if (!on) return fail(on.error());
        svc.rebalance.enabled = *on;
        return {};
    }
    if (!node.IsMap())
        return fail(config_error(at(node, file) + ": spec.rebalance: must be true, false or {rate: N, max: K}"));
    if (auto ok = check_fields(node, {"rate", "max"}, file, "spec.rebalance."); !ok) return fail(ok.error());
    svc.rebalance.enabled = true;
    if (const YAML::Node rate = node["rate"]) {
        auto n = scalar_int(rate, file, "spec.rebalance.rate", 1, kMaxRebalanceRate);
        if (!n) return fail(n.error());
        svc.rebalance.rate = static_cast<uint32_t>(*n);
    }
    if (const YAML::Node max = node["max"]) {
        auto n = scalar_int(max, file, "spec.rebalance.max", 0, UINT32_MAX);
        if (!n) return fail(n.error());
        svc.rebalance.max = static_cast<uint32_t>(*n);
    }
    return {};
}

// A subset's weight; a lone subset may leave it out and takes everything.
Result<void> parse_weight(const YAML::Node& s, const std::string& file, const std::string& field, size_t subsets,
                          SubsetSpec& subset) {
    if (const YAML::Node w = s["weight"]) {
        auto weight = scalar_weight(w, file, field + ".weight");
        if (!weight) return fail(weight.error());
        subset.weight = *weight;
        subset.weight_where = {file, line_of(w)};
    } else if (subsets == 1) {
        subset.weight = 100;  // a lone destination takes all, as in Istio
        subset.weight_where = subset.where;
    } else {
        return fail(config_error(at(s, file) + ": " + field +
                                 ".weight: missing; every subset needs a weight when there are several"));
    }
    return {};
}

Result<void> parse_backends(const YAML::Node& s, const std::string& file, const std::string& field,
                            SubsetSpec& subset) {
    const YAML::Node backends = s["backends"];
    if (!backends || !backends.IsSequence() || backends.size() == 0)
        return fail(config_error(at(s, file) + ": " + field + ".backends: needs at least one ADDRESS:PORT"));
    for (size_t j = 0; j < backends.size(); ++j) {
        const std::string bfield = field + ".backends[" + std::to_string(j) + "]";
        auto text = scalar_string(backends[j], file, bfield);
        if (!text) return fail(text.error());
        auto ep = parse_endpoint(*text);
        if (!ep) return fail(config_error(at(backends[j], file) + ": " + bfield + ": " + ep.error().message));
        if (ep->is_wildcard())
            return fail(config_error(at(backends[j], file) + ": " + bfield + ": \"" + *text +
                                     "\": a backend needs a concrete address, such as 127.0.0.1"));
        subset.backends.push_back(*ep);
        subset.backend_where.push_back({file, line_of(backends[j])});
    }
    return {};
}

// spec.subsets[i] of `count`.
Result<SubsetSpec> parse_subset(const YAML::Node& s, const std::string& file, size_t i, size_t count) {
    const std::string field = "spec.subsets[" + std::to_string(i) + "]";
    if (!s.IsMap()) return fail(config_error(at(s, file) + ": " + field + ": must be a mapping"));
    if (auto ok = check_fields(s, {"name", "weight", "backends"}, file, field + "."); !ok) return fail(ok.error());
    SubsetSpec subset{.where = {file, line_of(s)}, .weight_path = {"spec", "subsets", std::to_string(i), "weight"}};
    auto name = optional_string(s, "name", file, field + ".name");
    if (!name) return fail(name.error());
    if (!*name || (*name)->empty()) return fail(config_error(at(s, file) + ": " + field + ".name: missing"));
    subset.name = **name;
    if (auto ok = check_name(subset.name, at(s, file), field + ".name"); !ok) return fail(ok.error());
    if (auto ok = parse_weight(s, file, field, count, subset); !ok) return fail(ok.error());
    if (auto ok = parse_backends(s, file, field, subset); !ok) return fail(ok.error());
    return subset;
}

}  // namespace

Result<ServiceSpec> parse_traffic_shift(const Resource& r, Diagnostics& diag) {
    const std::string& file = r.where.file;
    const YAML::Node& doc = r.node;
    if (auto ok = check_fields(doc, {"apiVersion", "kind", "metadata", "spec"}, file, ""); !ok) return fail(ok.error());
    if (auto ok = check_fields(doc["metadata"], {"name", "namespace", "labels", "annotations"}, file, "metadata."); !ok)
        return fail(ok.error());
    ServiceSpec svc{.name = r.name, .where = r.where, .origin = r.key()};
    const YAML::Node spec = doc["spec"];
    if (!spec || !spec.IsMap()) return fail(config_error(r.where.str() + ": spec: missing or not a mapping"));
    if (auto ok = check_fields(spec, {"listen", "affinity", "takeover", "outlierDetection", "policy", "rebalance", "subsets"}, file,
                               "spec.");
        !ok)
        return fail(ok.error());
    if (auto ok = parse_listen(spec, file, svc); !ok) return fail(ok.error());
    if (auto ok = parse_options(spec, file, svc); !ok) return fail(ok.error());
    if (auto ok = parse_outlier(spec, file, svc); !ok) return fail(ok.error());
    if (auto ok = parse_policy(spec, file, svc, diag); !ok) return fail(ok.error());
    if (auto ok = parse_rebalance(spec, file, svc); !ok) return fail(ok.error());

    const YAML::Node subsets = spec["subsets"];
    if (!subsets || !subsets.IsSequence() || subsets.size() == 0)
        return fail(config_error(at(spec, file) + ": spec.subsets: needs at least one subset"));
    for (size_t i = 0; i < subsets.size(); ++i) {
        auto subset = parse_subset(subsets[i], file, i, subsets.size());
        if (!subset) return fail(subset.error());
        svc.subsets.push_back(std::move(*subset));
    }
    return svc;
}

}  // namespace tcpshift
