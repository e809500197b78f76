// Named places where a test can make a step fail, to prove that what follows a failure (a
// rollback) really restores the old state. TCPSHIFT_FAILPOINT=NAME in the environment makes
// failpoint(NAME) fail; unset, it costs one getenv.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

#include "base/error.h"

namespace tcpshift {

inline Result<void> failpoint(std::string_view name) {
    const char* armed = std::getenv("TCPSHIFT_FAILPOINT");
    if (armed == nullptr || name != armed) return {};
    return fail(system_error("failpoint " + std::string(name) + " (TCPSHIFT_FAILPOINT)"));
}

}  // namespace tcpshift
