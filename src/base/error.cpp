#include "base/error.h"

#include <cstring>

namespace tcpshift {

Error system_error(std::string what, int errnum) {
    const char* name = strerrorname_np(errnum);
    what += ": ";
    what += name != nullptr ? name : std::to_string(errnum);
    what += " (";
    what += std::strerror(errnum);
    what += ")";
    return Error{.kind = ErrorKind::kSystem, .message = std::move(what), .errnum = errnum};
}

Error system_error(std::string what) {
    return Error{.kind = ErrorKind::kSystem, .message = std::move(what)};
}

Error config_error(std::string what) {
    return Error{.kind = ErrorKind::kConfig, .message = std::move(what)};
}

}  // namespace tcpshift
