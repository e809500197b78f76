// Named places where a test can make a step fail, to prove that what follows a failure (a
// rollback) really restores the old state. TCPSHIFT_FAILPOINT=NAME in the environment makes
// failpoint(NAME) fail; NAME:kill makes the process die there at once (SIGKILL), as a command
// killed midway does, with no chance to put anything back. Unset, it costs one getenv.
#pragma once

#include <csignal>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/error.h"

namespace tcpshift {

inline Result<void> failpoint(std::string_view name) {
    const char* armed = std::getenv("TCPSHIFT_FAILPOINT");
    if (armed == nullptr) return {};
    const std::string_view spec = armed;
    if (spec == std::string(name) + ":kill") std::raise(SIGKILL);
    if (spec != name) return {};
    return fail(system_error("failpoint " + std::string(name) + " (TCPSHIFT_FAILPOINT)"));
}

}  // namespace tcpshift
