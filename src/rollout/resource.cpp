#include "rollout/resource.h"

#include <algorithm>
#include <map>

#include "config/duration.h"
#include "config/yaml_fields.h"

namespace tcpshift {

namespace {

// A field's error as "file:line: spec.FIELD: why".
Error located(const YAML::Node& node, const std::string& file, const std::string& field, const std::string& why) {
    return config_error(at(node, file) + ": spec." + field + ": " + why);
}

Result<void> parse_steps_field(const YAML::Node& spec, const std::string& file, RolloutSpec& out) {
    const YAML::Node steps = spec["steps"];
    if (!steps) return {};
    if (!steps.IsSequence() || steps.size() == 0)
        return fail(located(steps, file, "steps", "a list of shares in percent, e.g. [5, 10, 25, 50, 100]"));
    std::string text;
    for (size_t i = 0; i < steps.size(); ++i) {
        auto step = scalar_int(steps[i], file, "spec.steps[" + std::to_string(i) + "]", 1, 100);
        if (!step) return fail(step.error());
        text += (i ? "," : "") + std::to_string(*step);
    }
    auto parsed = parse_steps(text, "spec.steps");
    if (!parsed) return fail(config_error(at(steps, file) + ": " + parsed.error().message));
    out.steps = *parsed;
    return {};
}

Result<void> parse_percent_field(const YAML::Node& spec, const std::string& file, const char* field, double max,
                                 double& out) {
    const YAML::Node node = spec[field];
    if (!node) return {};
    auto text = scalar_string(node, file, std::string("spec.") + field);
    if (!text) return fail(text.error());
    auto value = parse_percent(std::string("spec.") + field, *text, max);
    if (!value) return fail(config_error(at(node, file) + ": " + value.error().message));
    out = *value;
    return {};
}

}  // namespace

Result<RolloutSpec> parse_traffic_rollout(const Resource& r) {
    const std::string& file = r.where.file;
    const YAML::Node& doc = r.node;
    if (auto ok = check_fields(doc, {"apiVersion", "kind", "metadata", "spec"}, file, ""); !ok) return fail(ok.error());
    const YAML::Node spec = doc["spec"];
    if (!spec || !spec.IsMap()) return fail(config_error(r.where.str() + ": spec: missing or not a mapping"));
    if (auto ok = check_fields(spec, {"service", "to", "steps", "interval", "maxFailureRate", "maxRttIncrease", "rttSlack",
                                      "minConnections", "maxWait"},
                               file, "spec.");
        !ok)
        return fail(ok.error());
    RolloutSpec out{.steps = {5, 10, 25, 50, 100}};
    for (auto [key, target] : {std::pair{"service", &out.service}, std::pair{"to", &out.canary}}) {
        auto value = optional_string(spec, key, file, std::string("spec.") + key);
        if (!value) return fail(value.error());
        if (!*value) return fail(config_error(at(spec, file) + ": spec." + key + ": missing"));
        *target = **value;
    }
    if (auto ok = check_service_name(out.service); !ok)
        return fail(located(spec["service"], file, "service", ok.error().message));
    if (auto ok = parse_steps_field(spec, file, out); !ok) return fail(ok.error());
    if (spec["interval"]) {
        auto interval = scalar_duration_ms(spec["interval"], file, "spec.interval", 1000, 24ull * 3600 * 1000);
        if (!interval) return fail(interval.error());
        out.interval_ms = *interval;
    }
    if (spec["maxWait"]) {
        auto wait = scalar_duration_ms(spec["maxWait"], file, "spec.maxWait", 1000, 7ull * 24 * 3600 * 1000);
        if (!wait) return fail(wait.error());
        out.max_wait_ms = *wait;
    }
    if (spec["rttSlack"]) {
        auto slack = scalar_duration_ms(spec["rttSlack"], file, "spec.rttSlack", 0, 60'000);
        if (!slack) return fail(slack.error());
        out.rtt_slack_us = *slack * 1000;
    }
    if (auto ok = parse_percent_field(spec, file, "maxFailureRate", 1, out.max_failure_rate); !ok) return fail(ok.error());
    if (auto ok = parse_percent_field(spec, file, "maxRttIncrease", 100, out.max_rtt_increase); !ok)
        return fail(ok.error());
    if (spec["minConnections"]) {
        auto min = scalar_int(spec["minConnections"], file, "spec.minConnections", 1, 100'000'000);
        if (!min) return fail(min.error());
        out.min_connections = static_cast<uint64_t>(*min);
    }
    return out;
}

Result<std::vector<DeclaredRollout>> traffic_rollouts(const std::vector<Resource>& resources) {
    std::vector<DeclaredRollout> out;
    std::map<std::string, std::string> where;  // service -> the resource that rolls it out
    for (const auto& r : resources) {
        if (r.kind != kRolloutKind) continue;
        auto spec = guarded(r, [&] { return parse_traffic_rollout(r); });
        if (!spec) return fail(spec.error());
        if (auto [it, fresh] = where.emplace(spec->service, r.where.str()); !fresh)
            return fail(config_error(r.where.str() + ": spec.service: " + spec->service + " is rolled out by " + it->second +
                                     " already"));
        out.push_back({.spec = std::move(*spec), .where = r.where.str()});
    }
    return out;
}

Result<void> check_rollouts(const std::vector<DeclaredRollout>& rollouts, const Plan& plan) {
    for (const auto& [spec, where] : rollouts) {
        const PlanService* svc = plan.find_service(spec.service);
        if (!svc) return fail(config_error(where + ": spec.service: no service \"" + spec.service + "\" in the configuration"));
        const bool has = std::any_of(svc->subsets.begin(), svc->subsets.end(),
                                     [&](const PlanSubset& s) { return s.name == spec.canary; });
        if (!has) return fail(config_error(where + ": spec.to: service \"" + spec.service + "\" has no subset \"" + spec.canary + "\""));
        if (svc->subsets.size() < 2)
            return fail(config_error(where + ": spec.service: \"" + spec.service + "\" has one subset; a canary needs a baseline"));
    }
    return {};
}

}  // namespace tcpshift
