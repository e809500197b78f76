// Istio DestinationRule: the subsets of a host, by label, and the policies that apply to TCP on
// a host: consistentHash.useSourceIp, and outlierDetection for its connect-time backends. Every
// other policy is warned about, since no proxy is there to apply it.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <set>

#include "config/mesh/istio.h"
#include "config/yaml_fields.h"

namespace tcpshift::mesh::istio {

namespace {

// The policies of a trafficPolicy that tcpshift applies.
struct TrafficPolicy {
    bool source_ip = false;
    std::optional<OutlierPolicy> outlier;
};

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

// policy.outlierDetection. For TCP, Envoy counts a failed connection both as a 5xx and
// as a gateway error, so whichever threshold is reached first ejects: the smaller of the
// enabled ones. consecutive5xxErrors is 5 when left out, consecutiveGatewayErrors off; 0
// disables either. What has no meaning without a proxy's sweep is warned about.
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
    if (auto ok = warn_ignored(od, {"maxEjectionPercent", "minHealthPercent"}, file, field,
                               "ignored; any number of backends may be ejected (with all of them out, a connection "
                               "takes its first choice)",
                               diag);
        !ok)
        return fail(ok.error());
    if (auto ok = warn_ignored(od, {"consecutiveErrors"}, file, field,
                               "ignored; deprecated by Istio: use consecutive5xxErrors", diag);
        !ok)
        return fail(ok.error());

    OutlierPolicy outlier{.where = {file, key_line_of(policy, "outlierDetection")}};
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

// loadBalancer: returns whether consistentHash.useSourceIp is set; warns for every other hash.
Result<bool> parse_load_balancer(const YAML::Node& lb, const std::string& file, const std::string& field,
                                 Diagnostics& diag) {
    if (!lb) return false;
    if (auto ok = check_fields(lb, {"simple", "consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup"},
                               file, field + ".");
        !ok)
        return fail(ok.error());
    const YAML::Node hash = lb["consistentHash"];
    if (!hash) return false;
    for (const auto& kv : hash) {
        auto key_text = scalar_string(kv.first, file, field + ".consistentHash key");
        if (!key_text) return fail(key_text.error());
        const std::string key = *key_text;
        if (key == "useSourceIp") continue;
        if (auto ok = diag.warn(at(kv.first, file) + ": " + field + ".consistentHash." + key +
                                ": only useSourceIp applies to TCP; ignored");
            !ok)
            return fail(ok.error());
    }
    if (!hash["useSourceIp"]) return false;
    return scalar_bool(hash["useSourceIp"], file, field + ".consistentHash.useSourceIp");
}

// The policies of a trafficPolicy; warns for every one that tcpshift cannot apply. The
// outlierDetection of a subset is warned about: one policy holds for every connect-time
// backend of a service, the host's (`subset` false).
Result<TrafficPolicy> parse_traffic_policy(const YAML::Node& policy, const std::string& file, const std::string& field,
                                           bool subset, Diagnostics& diag) {
    TrafficPolicy out;
    if (!policy) return out;
    if (auto ok = check_fields(policy,
                               {"loadBalancer", "connectionPool", "outlierDetection", "tls", "portLevelSettings",
                                "tunnel", "proxyProtocol"},
                               file, field + ".");
        !ok)
        return fail(ok.error());
    if (auto ok = warn_ignored(policy, {"connectionPool", "tls", "portLevelSettings", "tunnel", "proxyProtocol"}, file,
                               field, "not honoured; tcpshift has no proxy to apply it", diag);
        !ok)
        return fail(ok.error());
    if (subset) {
        if (auto ok = warn_ignored(policy, {"outlierDetection"}, file, field,
                                   "ignored in a subset; the host's trafficPolicy.outlierDetection holds for every "
                                   "backend of the service",
                                   diag);
            !ok)
            return fail(ok.error());
    } else if (policy["outlierDetection"]) {
        auto outlier = parse_outlier_detection(policy, file, field + ".outlierDetection", diag);
        if (!outlier) return fail(outlier.error());
        out.outlier = *outlier;
    }
    auto source_ip = parse_load_balancer(policy["loadBalancer"], file, field + ".loadBalancer", diag);
    if (!source_ip) return fail(source_ip.error());
    out.source_ip = *source_ip;
    return out;
}

// The line of a policy's useSourceIp, which `explain` cites for the affinity.
int use_source_ip_line(const YAML::Node& holder) {
    return line_of(holder["trafficPolicy"]["loadBalancer"]["consistentHash"]["useSourceIp"]);
}

// spec.subsets[i]; `names` holds the names of the subsets before it.
Result<SubsetRule> parse_subset_rule(const YAML::Node& s, const std::string& file, size_t i,
                                     std::set<std::string>& names, Diagnostics& diag) {
    const std::string field = "spec.subsets[" + std::to_string(i) + "]";
    if (auto ok = check_fields(s, {"name", "labels", "trafficPolicy"}, file, field + "."); !ok) return fail(ok.error());
    SubsetRule rule{.where = {file, line_of(s)}};
    auto name = optional_string(s, "name", file, field + ".name");
    if (!name) return fail(name.error());
    if (!*name) return fail(config_error(at(s, file) + ": " + field + ".name: missing"));
    rule.name = **name;
    if (auto ok = check_name(rule.name, at(s, file), field + ".name"); !ok) return fail(ok.error());
    if (!names.insert(rule.name).second)
        return fail(config_error(at(s, file) + ": " + field + ".name: subset \"" + rule.name + "\" is defined twice"));
    auto labels = parse_labels(s["labels"], file, field + ".labels");
    if (!labels) return fail(labels.error());
    rule.labels = *labels;
    auto policy = parse_traffic_policy(s["trafficPolicy"], file, field + ".trafficPolicy", true, diag);
    if (!policy) return fail(policy.error());
    rule.source_ip = policy->source_ip;
    if (rule.source_ip) rule.where.line = use_source_ip_line(s);
    return rule;
}

}  // namespace

Result<DestinationRule> parse_destination_rule(const Resource& r, const Catalog& catalog, Diagnostics& diag) {
    const std::string& file = r.where.file;
    const YAML::Node spec = r.node["spec"];
    if (!spec || !spec.IsMap()) return fail(config_error(r.where.str() + ": spec: missing or not a mapping"));
    if (auto ok = check_fields(spec, {"host", "subsets", "trafficPolicy", "exportTo", "workloadSelector"}, file, "spec.");
        !ok)
        return fail(ok.error());
    DestinationRule dr{.ns = r.ns, .where = r.where};
    auto host = optional_string(spec, "host", file, "spec.host");
    if (!host) return fail(host.error());
    if (!*host) return fail(config_error(r.where.str() + ": spec.host: missing"));
    dr.service = catalog.find_host(**host, r.ns);
    if (!dr.service)
        return fail(config_error(at(spec["host"], file) + ": spec.host: no Service or ServiceEntry for host \"" +
                                 **host + "\" in namespace " + r.ns +
                                 "; define it (a ServiceEntry with workloadSelector, or a Service with selector)"));

    auto policy = parse_traffic_policy(spec["trafficPolicy"], file, "spec.trafficPolicy", false, diag);
    if (!policy) return fail(policy.error());
    dr.source_ip = policy->source_ip;
    dr.outlier = policy->outlier;
    if (dr.source_ip) dr.source_ip_where = {file, use_source_ip_line(spec)};

    if (const YAML::Node subsets = spec["subsets"]) {
        std::set<std::string> names;
        for (size_t i = 0; i < subsets.size(); ++i) {
            auto rule = parse_subset_rule(subsets[i], file, i, names, diag);
            if (!rule) return fail(rule.error());
            dr.subsets.push_back(std::move(*rule));
        }
    }
    return dr;
}

Result<void> take_outlier_policy(const DestinationRule* rule, ServiceSpec& svc, const std::string& where,
                                 Diagnostics& diag) {
    if (!rule || !rule->outlier) return {};
    if (svc.outlier.where.file.empty()) {
        svc.outlier = *rule->outlier;
        return {};
    }
    if (*rule->outlier == svc.outlier) return {};
    return diag.warn(where + ": the outlierDetection of DestinationRule " + rule->ns + " (" +
                     rule->outlier->where.str() + ") differs from the one service " + svc.name + " takes (" +
                     svc.outlier.where.str() + "); one policy holds for every backend of a service: the first "
                     "destination's");
}

}  // namespace tcpshift::mesh::istio
