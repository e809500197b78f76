#include "config/yaml_fields.h"

#include <charconv>
#include <cmath>
#include <sstream>

#include "config/duration.h"

namespace tcpshift {

int line_of(const YAML::Node& node) {
    if (!node.IsDefined()) return 0;
    return node.Mark().line + 1;
}

int key_line_of(const YAML::Node& map, const std::string& key) {
    if (!map.IsMap()) return 0;
    for (const auto& kv : map)
        if (kv.first.IsScalar() && kv.first.Scalar() == key) return line_of(kv.first);
    return 0;
}

std::string at(const YAML::Node& node, const std::string& file) {
    const int line = line_of(node);
    return line > 0 ? file + ":" + std::to_string(line) : file;
}

Result<void> present(const YAML::Node& node, const std::string& file, const std::string& field) {
    if (node.IsDefined()) return {};
    return fail(config_error(file + ": " + field + ": missing"));
}

Result<void> check_fields(const YAML::Node& map, std::initializer_list<std::string_view> known,
                          const std::string& file, const std::string& prefix) {
    if (!map || map.IsNull()) return {};
    if (!map.IsMap()) {
        const std::string field = prefix.empty() ? "document" : prefix.substr(0, prefix.size() - 1);
        return fail(config_error(at(map, file) + ": " + field + ": must be a mapping"));
    }
    for (const auto& kv : map) {
        const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
        bool found = false;
        for (auto k : known) found = found || k == key;
        if (found) continue;
        std::string list;
        for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        return fail(config_error(at(kv.first, file) + ": " + prefix + key + ": unknown field; known here: " + list));
    }
    return {};
}

Result<std::string> scalar_string(const YAML::Node& node, const std::string& file, const std::string& field) {
    if (auto ok = present(node, file, field); !ok) return fail(ok.error());
    if (!node.IsScalar()) return fail(config_error(at(node, file) + ": " + field + ": must be a string"));
    return node.Scalar();
}

Result<std::optional<std::string>> optional_string(const YAML::Node& map, const std::string& key,
                                                   const std::string& file, const std::string& field) {
    const YAML::Node node = map[key];
    if (!node || node.IsNull()) return std::optional<std::string>{};
    auto text = scalar_string(node, file, field);
    if (!text) return fail(text.error());
    return std::optional<std::string>{*text};
}

Result<std::string> string_or(const YAML::Node& map, const std::string& key, std::string fallback,
                              const std::string& file, const std::string& field) {
    auto text = optional_string(map, key, file, field);
    if (!text) return fail(text.error());
    return text->value_or(std::move(fallback));
}

Result<bool> scalar_bool(const YAML::Node& node, const std::string& file, const std::string& field) {
    if (auto ok = present(node, file, field); !ok) return fail(ok.error());
    if (node.IsScalar()) {
        const auto& s = node.Scalar();
        if (s == "true" || s == "True" || s == "TRUE") return true;
        if (s == "false" || s == "False" || s == "FALSE") return false;
    }
    return fail(config_error(at(node, file) + ": " + field + ": must be true or false"));
}

Result<int64_t> scalar_int(const YAML::Node& node, const std::string& file, const std::string& field, int64_t lo,
                           int64_t hi) {
    if (auto ok = present(node, file, field); !ok) return fail(ok.error());
    if (!node.IsScalar()) return fail(config_error(at(node, file) + ": " + field + ": must be an integer"));
    const std::string& s = node.Scalar();
    int64_t value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec == std::errc::result_out_of_range)
        return fail(config_error(at(node, file) + ": " + field + ": " + s + " is out of range " + std::to_string(lo) +
                                 "-" + std::to_string(hi)));
    if (ec != std::errc() || end != s.data() + s.size() || s.empty())
        return fail(config_error(at(node, file) + ": " + field + ": \"" + s + "\" is not an integer"));
    if (value < lo || value > hi)
        return fail(config_error(at(node, file) + ": " + field + ": " + s + " is out of range " + std::to_string(lo) +
                                 "-" + std::to_string(hi)));
    return value;
}

Result<double> scalar_double(const YAML::Node& node, const std::string& file, const std::string& field, double lo,
                             double hi) {
    const auto range = [&](const std::string& s) {
        std::ostringstream out;
        out << field << ": " << s << " is out of range " << lo << "-" << hi;
        return config_error(at(node, file) + ": " + out.str());
    };
    if (auto ok = present(node, file, field); !ok) return fail(ok.error());
    if (!node.IsScalar()) return fail(config_error(at(node, file) + ": " + field + ": must be a number"));
    const std::string& s = node.Scalar();
    double value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec == std::errc::result_out_of_range) return fail(range(s));
    if (ec != std::errc() || end != s.data() + s.size() || s.empty() || !std::isfinite(value))
        return fail(config_error(at(node, file) + ": " + field + ": \"" + s + "\" is not a number"));
    if (value < lo || value > hi) return fail(range(s));
    return value;
}

Result<uint64_t> scalar_duration_ms(const YAML::Node& node, const std::string& file, const std::string& field,
                                    uint64_t lo_ms, uint64_t hi_ms) {
    if (auto ok = present(node, file, field); !ok) return fail(ok.error());
    if (!node.IsScalar()) return fail(config_error(at(node, file) + ": " + field + ": must be a duration such as 30s"));
    auto ms = parse_duration_ms(node.Scalar());
    if (!ms) return fail(config_error(at(node, file) + ": " + field + ": " + ms.error().message));
    if (*ms < lo_ms || *ms > hi_ms)
        return fail(config_error(at(node, file) + ": " + field + ": " + node.Scalar() + " is out of range " +
                                 duration_str(lo_ms) + " to " + duration_str(hi_ms)));
    return *ms;
}

Result<uint32_t> scalar_weight(const YAML::Node& node, const std::string& file, const std::string& field) {
    auto value = scalar_int(node, file, field, 0, 1000000);
    if (!value) return fail(value.error());
    return static_cast<uint32_t>(*value);
}

}  // namespace tcpshift
