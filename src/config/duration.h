// Durations as Istio writes them ("30s", "1.5s", "500ms", "1m", "1h30m"): the protobuf
// Duration of its YAML, which also takes Go's unit suffixes. tcpshift keeps milliseconds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace tcpshift {

// Parses one or more NUMBER UNIT pairs (NUMBER: digits with an optional fraction; UNIT: h, m,
// s or ms) into milliseconds; "0" alone is zero. A sign, a missing unit, a part finer than a
// millisecond or a total above 100 days is an error whose message names the text and says why,
// without a location (the caller adds file:line and the field, or the option).
Result<uint64_t> parse_duration_ms(std::string_view text);

// "500 ms", "30 s", "1.5 s", "2 min", "90 s", "24 h": how explain and the agent's log say a duration.
std::string duration_str(uint64_t ms);

}  // namespace tcpshift
