// Every e2e test runs beside a neighbour namespace that uses tcpshift on the same ports.
#include "netns_fixture.h"

namespace {

const auto* const kNeighbour = ::testing::AddGlobalTestEnvironment(new tcpshift::testing::NeighbourNamespace);

}  // namespace
