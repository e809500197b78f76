// Istio DestinationRule: the subsets of a host, by label, and its trafficPolicy (the host's and
// each subset's, read by config/traffic_policy.h).
#include <cstdint>
#include <set>

#include "config/mesh/istio.h"
#include "config/yaml_fields.h"

namespace tcpshift::mesh::istio {

namespace {

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
    auto policy = parse_destination_policy(s["trafficPolicy"], file, field + ".trafficPolicy", diag);
    if (!policy) return fail(policy.error());
    rule.policy = std::move(*policy);
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

    auto policy = parse_destination_policy(spec["trafficPolicy"], file, "spec.trafficPolicy", diag);
    if (!policy) return fail(policy.error());
    dr.policy = std::move(*policy);

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

TrafficPolicy DestinationRule::policy_for(const SubsetRule* subset, uint32_t port) const {
    const TrafficPolicy& host = policy.for_port(port);
    return subset ? subset->policy.for_port(port).over(host) : host;
}

}  // namespace tcpshift::mesh::istio
