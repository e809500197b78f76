// libFuzzer target for one mesh resolver over the catalog (ServiceEntry, WorkloadEntry,
// Service), built twice: fuzz_istio runs resolve_istio (Gateway, VirtualService,
// DestinationRule), fuzz_gateway_api runs resolve_gateway_api (Gateway, TCPRoute).
// TCPSHIFT_FUZZ_RESOLVER names the one.
#include "config/mesh/mesh.h"
#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace tcpshift;
    Diagnostics diag;
    auto resources = fuzz::parse_input(data, size, diag);
    if (!resources) return 0;
    auto catalog = fuzz::accepted(mesh::Catalog::build(*resources, diag));
    if (!catalog) return 0;
    if (auto services = fuzz::accepted(mesh::TCPSHIFT_FUZZ_RESOLVER(*resources, *catalog, diag)))
        fuzz::check_services(*services);
    return 0;
}
