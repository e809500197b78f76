// Typed, located access to YAML fields: every error names file:line and the field path.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

#include "base/error.h"
#include "config/config.h"

namespace tcpshift {

// Runs `read` on resource `r`. A shape its reader did not foresee (a null or a mapping where a
// list or a mapping of other keys belongs) makes yaml-cpp throw; it is refused as the
// resource's configuration error, never let out as an exception.
template <typename F>
auto guarded(const Resource& r, F&& read) -> decltype(read()) {
    try {
        return read();
    } catch (const YAML::Exception& e) {
        return fail(config_error(r.where.str() + ": " + r.kind + " \"" + r.name +
                                 "\": a field does not have the shape of its kind (" + e.msg + ")"));
    }
}

// "file:line" of a node.
std::string at(const YAML::Node& node, const std::string& file);

// Fails with "FILE: FIELD: missing" when `node` is not there: a key absent from a null or
// missing parent gives a node that yaml-cpp throws on when asked anything else.
Result<void> present(const YAML::Node& node, const std::string& file, const std::string& field);

// Every key of `map` must be one of `known`; the error names the first unknown field
// and lists the known ones. `prefix` is the field path of the map, "spec." or "".
Result<void> check_fields(const YAML::Node& map, std::initializer_list<std::string_view> known,
                          const std::string& file, const std::string& prefix);

// The 1-based line of a node; 0 for a node that is missing (whose Mark() would throw).
int line_of(const YAML::Node& node);
// The line of `key` in `map`: where a block written under it is named, while the block's own
// line is that of its first entry. 0 when the key is absent.
int key_line_of(const YAML::Node& map, const std::string& key);
// A scalar as text; a sequence or mapping is an error.
Result<std::string> scalar_string(const YAML::Node& node, const std::string& file, const std::string& field);
// map[key] as text when present.
Result<std::optional<std::string>> optional_string(const YAML::Node& map, const std::string& key,
                                                   const std::string& file, const std::string& field);
// map[key] as text, or `fallback` when absent.
Result<std::string> string_or(const YAML::Node& map, const std::string& key, std::string fallback,
                              const std::string& file, const std::string& field);
Result<bool> scalar_bool(const YAML::Node& node, const std::string& file, const std::string& field);
// A non-negative integer weight, at most 1,000,000.
Result<uint32_t> scalar_weight(const YAML::Node& node, const std::string& file, const std::string& field);
// An integer in [lo, hi].
Result<int64_t> scalar_int(const YAML::Node& node, const std::string& file, const std::string& field, int64_t lo,
                           int64_t hi);
// A number in [lo, hi] (an integer or a decimal fraction, as a protobuf double is written).
Result<double> scalar_double(const YAML::Node& node, const std::string& file, const std::string& field, double lo,
                             double hi);
// A duration (config/duration.h) in milliseconds, in [lo_ms, hi_ms].
Result<uint64_t> scalar_duration_ms(const YAML::Node& node, const std::string& file, const std::string& field,
                                    uint64_t lo_ms, uint64_t hi_ms);

}  // namespace tcpshift
