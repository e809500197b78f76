#include "base/endpoint.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "test_names.h"

namespace tcpshift {
namespace {

struct EndpointCase {
    const char* desc;
    const char* text;
    bool ok;
    const char* str_or_error;  // the canonical form, or a fragment of the error
};

void PrintTo(const EndpointCase& c, std::ostream* os) { *os << c.desc; }

class EndpointTest : public ::testing::TestWithParam<EndpointCase> {};

TEST_P(EndpointTest, Parses) {
    const auto& c = GetParam();
    auto ep = parse_endpoint(c.text);
    ASSERT_EQ(ep.has_value(), c.ok) << c.desc;
    if (c.ok) {
        EXPECT_EQ(ep->str(), c.str_or_error) << c.desc;
    } else {
        EXPECT_NE(ep.error().message.find(c.str_or_error), std::string::npos) << ep.error().message;
        EXPECT_EQ(ep.error().kind, ErrorKind::kConfig);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Table, EndpointTest,
    ::testing::Values(EndpointCase{.desc = "ipv4", .text = "127.0.0.1:9001", .ok = true, .str_or_error = "127.0.0.1:9001"},
                      EndpointCase{.desc = "ipv4 wildcard", .text = "0.0.0.0:31400", .ok = true, .str_or_error = "0.0.0.0:31400"},
                      EndpointCase{.desc = "ipv6", .text = "[::1]:80", .ok = true, .str_or_error = "[::1]:80"},
                      EndpointCase{.desc = "ipv6 wildcard", .text = "[::]:31400", .ok = true, .str_or_error = "[::]:31400"},
                      EndpointCase{.desc = "highest port", .text = "10.0.0.1:65535", .ok = true, .str_or_error = "10.0.0.1:65535"},
                      EndpointCase{.desc = "port 0", .text = "127.0.0.1:0", .ok = false, .str_or_error = "out of range 1-65535"},
                      EndpointCase{.desc = "port 65536", .text = "127.0.0.1:65536", .ok = false, .str_or_error = "out of range"},
                      EndpointCase{.desc = "negative port", .text = "127.0.0.1:-1", .ok = false, .str_or_error = "out of range"},
                      EndpointCase{.desc = "port text", .text = "127.0.0.1:http", .ok = false, .str_or_error = "not a number"},
                      EndpointCase{.desc = "no port", .text = "127.0.0.1", .ok = false, .str_or_error = "ADDRESS:PORT"},
                      EndpointCase{.desc = "bad address", .text = "300.1.1.1:80", .ok = false, .str_or_error = "not an IPv4 or IPv6"},
                      EndpointCase{.desc = "hostname", .text = "localhost:80", .ok = false, .str_or_error = "not an IPv4 or IPv6"},
                      EndpointCase{.desc = "bare ipv6", .text = "::1:80", .ok = false, .str_or_error = "brackets"},
                      EndpointCase{.desc = "unclosed bracket", .text = "[::1:80", .ok = false, .str_or_error = "unclosed"},
                      EndpointCase{.desc = "empty", .text = "", .ok = false, .str_or_error = "ADDRESS:PORT"}),
    [](const auto& info) { return test_case_name(info.param.desc); });

TEST(Endpoint, StoresAddressesInNetworkByteOrderAndPortsInHostOrder) {
    auto ep = parse_endpoint("127.0.0.2:9001");
    ASSERT_TRUE(ep);
    EXPECT_EQ(ep->family, AF_INET);
    EXPECT_EQ(ep->addr[0], htonl(0x7f000002));
    EXPECT_EQ(ep->port, 9001);
    EXPECT_FALSE(ep->is_wildcard());
    EXPECT_TRUE(parse_endpoint("[::]:1")->is_wildcard());
}

}  // namespace
}  // namespace tcpshift
