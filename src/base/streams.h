// Where a command writes: results to `out`, progress and diagnostics to `err`. Commands take
// their streams as a value so tests run them in-process.
#pragma once

#include <ostream>

namespace tcpshift {

struct Streams {
    std::ostream& out;
    std::ostream& err;
};

}  // namespace tcpshift
