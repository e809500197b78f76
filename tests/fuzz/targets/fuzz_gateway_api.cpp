// libFuzzer target: the Gateway API resolver (Gateway and TCPRoute over
// ServiceEntry, WorkloadEntry and Service), without the native and Istio paths.
#include "../../../userspace/mesh.h"
#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace tcpshift;
    Diagnostics diag;
    auto resources = parse_resources(fuzz::input_text(data, size), "fuzz.yaml", "default", &diag);
    if (!resources) {
        fuzz::check_refusal(resources.error());
        return 0;
    }
    auto catalog = mesh::Catalog::build(*resources, diag);
    if (!catalog) {
        fuzz::check_refusal(catalog.error());
        return 0;
    }
    auto services = mesh::resolve_gateway_api(*resources, *catalog, diag);
    if (!services) {
        fuzz::check_refusal(services.error());
        return 0;
    }
    fuzz::check_services(*services);
    return 0;
}
