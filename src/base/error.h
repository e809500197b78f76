// Errors that carry their story, and the result type every fallible call returns.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace tcpshift {

// What kind of failure an error is; only main() turns it into an exit status.
enum class ErrorKind {
    kSystem,  // the system refused: privilege, kernel feature, busy pins
    kConfig,  // usage or configuration error
    kAborted, // a rollout ended without promotion: a gate failed, a user aborted, or its weights were changed
};

// One line that says what failed, where and why, e.g.
// `update map "tables": E2BIG` or `tcp-echo.yaml:12: spec.subsets[1].weight: must be >= 0`.
struct Error {
    ErrorKind kind = ErrorKind::kSystem;
    std::string message;
    // The errno the system answered, kept as a number so callers can test for EEXIST or
    // EBUSY without reading the message; 0 when the failure has none.
    int errnum = 0;

    bool is(int e) const { return errnum == e; }
};

template <typename T>
using Result = std::expected<T, Error>;

// A failure of the system, with errno rendered as its name (EBUSY) and text.
Error system_error(std::string what, int errnum);
// A failure of the system without an errno.
Error system_error(std::string what);
// A usage or configuration error.
Error config_error(std::string what);

inline std::unexpected<Error> fail(Error error) { return std::unexpected<Error>(std::move(error)); }

}  // namespace tcpshift
