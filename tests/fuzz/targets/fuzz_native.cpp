// libFuzzer target: the native TrafficShift parser, from bytes to validated services.
#include "config/resolve.h"
#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace tcpshift;
    Diagnostics diag;
    auto resources = fuzz::parse_input(data, size, diag);
    if (!resources) return 0;
    if (auto services = fuzz::accepted(resolve_services(*resources, &diag))) fuzz::check_services(*services);
    return 0;
}
