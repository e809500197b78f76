// Istio DestinationRule: the subsets of a host, by label, and the one load-balancing policy
// that applies to TCP on a host: consistentHash.useSourceIp. Every other policy is warned
// about, since no proxy is there to apply it.
#include <set>

#include "config/mesh/istio.h"
#include "config/yaml_fields.h"

namespace tcpshift::mesh::istio {

namespace {

// Returns whether useSourceIp is set; warns for every policy that tcpshift cannot apply.
Result<bool> parse_traffic_policy(const YAML::Node& policy, const std::string& file, const std::string& field,
                                  Diagnostics& diag) {
    if (!policy) return false;
    if (auto ok = check_fields(policy,
                               {"loadBalancer", "connectionPool", "outlierDetection", "tls", "portLevelSettings",
                                "tunnel", "proxyProtocol"},
                               file, field + ".");
        !ok)
        return fail(ok.error());
    for (const char* ignored :
         {"connectionPool", "outlierDetection", "tls", "portLevelSettings", "tunnel", "proxyProtocol"}) {
        if (policy[ignored]) {
            if (auto ok = diag.warn(at(policy[ignored], file) + ": " + field + "." + ignored +
                                    ": not honoured; tcpshift has no proxy to apply it");
                !ok)
                return fail(ok.error());
        }
    }
    const YAML::Node lb = policy["loadBalancer"];
    if (!lb) return false;
    if (auto ok = check_fields(lb, {"simple", "consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup"},
                               file, field + ".loadBalancer.");
        !ok)
        return fail(ok.error());
    const YAML::Node hash = lb["consistentHash"];
    if (!hash) return false;
    for (const auto& kv : hash) {
        auto key_text = scalar_string(kv.first, file, field + ".loadBalancer.consistentHash key");
        if (!key_text) return fail(key_text.error());
        const std::string key = *key_text;
        if (key == "useSourceIp") continue;
        if (auto ok = diag.warn(at(kv.first, file) + ": " + field + ".loadBalancer.consistentHash." + key +
                                ": only useSourceIp applies to TCP; ignored");
            !ok)
            return fail(ok.error());
    }
    if (!hash["useSourceIp"]) return false;
    return scalar_bool(hash["useSourceIp"], file, field + ".loadBalancer.consistentHash.useSourceIp");
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
    auto source_ip = parse_traffic_policy(s["trafficPolicy"], file, field + ".trafficPolicy", diag);
    if (!source_ip) return fail(source_ip.error());
    rule.source_ip = *source_ip;
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

    auto source_ip = parse_traffic_policy(spec["trafficPolicy"], file, "spec.trafficPolicy", diag);
    if (!source_ip) return fail(source_ip.error());
    dr.source_ip = *source_ip;
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

}  // namespace tcpshift::mesh::istio
