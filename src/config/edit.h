// Changes made to a resource in place of the user, so the stored document says what the data
// plane does: `tcpshift set` rewrites weights where the resource keeps them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "config/config.h"

namespace tcpshift {

// "v1=20" -> {"v1", 20}; the weight as a config file would have it (0 to 1,000,000).
Result<std::pair<std::string, uint32_t>> parse_weight_assignment(const std::string& arg);

// Sets the weight at `path` inside the resource's document: the path compiling recorded for
// a subset ("spec", "tcp", "0", "route", "1", "weight").
Result<void> set_weight(Resource& resource, const std::vector<std::string>& path, uint32_t weight);

}  // namespace tcpshift
