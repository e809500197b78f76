// Gateway API files, applied as users write them, route real connections. The files are the
// ones in examples/gateway-api, so the examples are tested too.
#include <gtest/gtest.h>

#include "tcp_echo_fixture.h"

namespace tcpshift::testing {
namespace {

class GatewayApiTest : public TcpEchoTest {};

TEST_F(GatewayApiTest, TheGatewayApiFormRoutesTheSame) {
    start_workloads();
    apply_file(example("gateway-api/tcp-echo.yaml"));
    expect_split("127.0.0.1:31400", 20, 80);
    const auto set = tcpshift_here({"set", "tcp-echo", "tcp-echo-v1=1", "tcp-echo-v2=1"});
    ASSERT_EQ(set.exit_code, 0) << set.err;
    expect_split("127.0.0.1:31400", 50, 50);
}

}  // namespace
}  // namespace tcpshift::testing
