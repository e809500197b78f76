// The agent's probe of connect-time backends: its interval option, which backends it probes,
// and the answers of a listener, of a closed port, and of many at once.
#include "agent/probe.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "base/fd.h"

namespace tcpshift {
namespace {

using std::chrono::milliseconds;

TEST(Probe, TheIntervalIsADurationWithinBounds) {
    struct Good {
        std::string text;
        milliseconds interval;
        milliseconds timeout;
    };
    const Good good[] = {
        {.text = "5s", .interval = milliseconds(5000), .timeout = milliseconds(1000)},
        {.text = "0", .interval = milliseconds(0), .timeout = milliseconds(0)},
        {.text = "100ms", .interval = milliseconds(100), .timeout = milliseconds(100)},
        {.text = "1.5s", .interval = milliseconds(1500), .timeout = milliseconds(1000)},
        {.text = "1h", .interval = milliseconds(3600000), .timeout = milliseconds(1000)},
    };
    for (const auto& c : good) {
        auto interval = parse_probe_interval(c.text);
        ASSERT_TRUE(interval) << c.text << ": " << interval.error().message;
        EXPECT_EQ(*interval, c.interval) << c.text;
        EXPECT_EQ(probe_timeout(*interval), c.timeout) << c.text;
    }
    struct Bad {
        std::string text;
        std::string want;
    };
    const Bad bad[] = {
        {.text = "50ms", .want = "--probe-interval: 50ms is out of range: 0 (off) or 100 ms to 1 h"},
        {.text = "2h", .want = "--probe-interval: 2h is out of range"},
        {.text = "-1s", .want = "--probe-interval: \"-1s\" is not a duration"},
        {.text = "5", .want = "--probe-interval: \"5\" is not a duration such as 30s, 1.5s, 500ms or 1m: each number "
                              "needs a unit"},
    };
    for (const auto& c : bad) {
        auto interval = parse_probe_interval(c.text);
        ASSERT_FALSE(interval) << c.text << " was accepted";
        EXPECT_EQ(interval.error().kind, ErrorKind::kConfig);
        EXPECT_NE(interval.error().message.find(c.want), std::string::npos) << interval.error().message;
    }
}

TEST(Probe, ProbesEachConnectTimeBackendOnce) {
    auto pod = *parse_endpoint("10.244.0.11:9000");
    auto local = *parse_endpoint("127.0.0.1:9001");
    const PlanService a{.name = "a",
                        .subsets = {PlanSubset{.name = "v1", .backends = {{.id = 3, .address = pod, .remote = true}}},
                                    PlanSubset{.name = "v2", .backends = {{.id = 4, .address = local}}}}};
    PlanService b = a;
    b.name = "b";
    const auto targets = probe_targets(Plan{.services = {a, b}});
    ASSERT_EQ(targets.size(), 1u);
    EXPECT_EQ(targets[0].id, 3u);
    EXPECT_EQ(targets[0].address, pod);
    EXPECT_EQ(targets[0].name, "a/v1");
}

// A listener on an ephemeral loopback port; the port is closed again when `keep` is false.
Endpoint loopback_port(Fd* keep) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin{.sin_family = AF_INET, .sin_port = 0, .sin_addr = {htonl(INADDR_LOOPBACK)}};
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
    EXPECT_EQ(::listen(fd.get(), 4096), 0);  // nobody accepts: room for every probe
    socklen_t len = sizeof(sin);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin), &len);
    auto ep = *parse_endpoint("127.0.0.1:" + std::to_string(ntohs(sin.sin_port)));
    if (keep) *keep = std::move(fd);
    return ep;
}

TEST(Probe, AListenerAnswersAndAClosedPortDoesNot) {
    Fd listener;
    const Endpoint open = loopback_port(&listener);
    const Endpoint closed = loopback_port(nullptr);
    // Many at once, more than one batch: every answer is in its place.
    std::vector<Endpoint> addresses;
    for (int i = 0; i < 300; ++i) addresses.push_back(i % 3 == 2 ? closed : open);
    const auto answers = probe_addresses(addresses, milliseconds(1000));
    ASSERT_EQ(answers.size(), addresses.size());
    for (size_t i = 0; i < answers.size(); ++i) {
        SCOPED_TRACE(i);
        if (addresses[i] == open) {
            EXPECT_TRUE(answers[i].answered) << answers[i].error;
        } else {
            EXPECT_FALSE(answers[i].answered);
            EXPECT_EQ(answers[i].error, "connect: ECONNREFUSED");
        }
    }
}

}  // namespace
}  // namespace tcpshift
