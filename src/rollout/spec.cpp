#include "rollout/spec.h"

#include <algorithm>
#include <charconv>
#include <cctype>
#include <cmath>
#include <sstream>

namespace tcpshift {

Result<std::vector<uint32_t>> parse_steps(const std::string& text, const std::string& option) {
    std::vector<uint32_t> steps;
    std::stringstream in(text);
    std::string part;
    while (std::getline(in, part, ',')) {
        if (!part.empty() && part.back() == '%') part.pop_back();  // "10%,50%" as well
        uint32_t value = 0;
        const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
        if (ec != std::errc() || end != part.data() + part.size() || value < 1 || value > 100)
            return fail(config_error(option + " " + text + ": \"" + part + "\" is not a share from 1 to 100 (percent)"));
        if (!steps.empty() && value <= steps.back())
            return fail(config_error(option + " " + text + ": the shares must rise; " + std::to_string(value) +
                                     " follows " + std::to_string(steps.back())));
        steps.push_back(value);
    }
    if (steps.empty()) return fail(config_error(option + ": give the canary's shares, e.g. 5,10,25,50,100"));
    return steps;
}

Result<double> parse_percent(const std::string& option, const std::string& text, double max) {
    std::string number = text;
    const bool percent = !number.empty() && number.back() == '%';
    if (percent) number.pop_back();
    double value = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (!percent || ec != std::errc() || end != number.data() + number.size() || !std::isfinite(value) || value < 0)
        return fail(config_error(option + " " + text + ": give a percentage, e.g. 1% or 0.5%"));
    if (value / 100 > max)
        return fail(config_error(option + " " + text + ": at most " + std::to_string(static_cast<int>(max * 100)) + "%"));
    return value / 100;
}

Result<void> check_service_name(const std::string& service) {
    const bool plain = !service.empty() && service.size() <= 253 && service != "." && service != ".." &&
                       std::all_of(service.begin(), service.end(), [](char c) {
                           return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
                       });
    if (!plain)
        return fail(config_error("rollout: \"" + service + "\" is not a service name (letters, digits, '.', '_', '-')"));
    return {};
}

Result<void> check_spec(const RolloutSpec& spec) {
    if (auto ok = check_service_name(spec.service); !ok) return ok;
    if (spec.interval_ms < 1000) return fail(config_error("--interval: at least 1s, to measure anything"));
    if (spec.steps.empty()) return fail(config_error("--steps: give the canary's shares, e.g. 5,10,25,50,100"));
    if (spec.min_connections == 0)
        return fail(config_error("--min-connections: at least 1; a step is never judged on no data"));
    return {};
}

Result<void> check_canary_share(const std::map<std::string, uint32_t>& weights, const RolloutSpec& spec) {
    uint64_t total = 0;
    for (const auto& [name, w] : weights) total += w;
    const auto canary = weights.find(spec.canary);
    const uint64_t share = total && canary != weights.end() ? 100 * uint64_t{canary->second} / total : 0;
    if (share < spec.steps.front()) return {};
    return fail(config_error(spec.canary + " takes " + std::to_string(share) + "% already, not less than the first step's " +
                             std::to_string(spec.steps.front()) + "%"));
}

std::map<std::string, uint32_t> step_weights(const std::map<std::string, uint32_t>& start, const std::string& canary,
                                             uint32_t percent) {
    uint64_t others = 0;
    size_t count = 0;
    for (const auto& [name, weight] : start)
        if (name != canary) others += weight, ++count;
    std::map<std::string, uint32_t> out{{canary, percent}};
    if (count == 0) return out;
    const uint32_t rest = 100 - percent;
    // Each other subset's exact share, floored; the remainder goes by largest fraction.
    std::vector<std::pair<double, std::string>> fractions;
    uint32_t given = 0;
    for (const auto& [name, weight] : start) {
        if (name == canary) continue;
        const double exact = others ? static_cast<double>(rest) * weight / others : static_cast<double>(rest) / count;
        out[name] = static_cast<uint32_t>(exact);
        given += out[name];
        fractions.emplace_back(exact - out[name], name);
    }
    std::stable_sort(fractions.begin(), fractions.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t i = 0; given < rest && i < fractions.size(); ++i, ++given) ++out[fractions[i].second];
    return out;
}

}  // namespace tcpshift
