// libFuzzer target: the native TrafficShift parser, from bytes to validated services.
#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace tcpshift;
    Diagnostics diag;
    auto resources = parse_resources(fuzz::input_text(data, size), "fuzz.yaml", "default", &diag);
    if (!resources) {
        fuzz::check_refusal(resources.error());
        return 0;
    }
    auto services = resolve_services(*resources, &diag);
    if (!services) {
        fuzz::check_refusal(services.error());
        return 0;
    }
    fuzz::check_services(*services);
    return 0;
}
