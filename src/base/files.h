// Files replaced whole: what readers of another process see is the old content or the new,
// never a part.
#pragma once

#include <string>
#include <sys/types.h>

#include "base/error.h"

namespace tcpshift {

// Writes `text` to PATH.tmp.PID (mode `mode`), syncs it, renames it over `path` and syncs the
// directory. The directory must exist.
Result<void> replace_file(const std::string& path, const std::string& text, mode_t mode);

}  // namespace tcpshift
