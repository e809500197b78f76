// loadBalancer LEAST_CONN (and LEAST_REQUEST): of a random draw and another backend of its
// subset, the one with fewer active connections takes the connection. Measured against the
// default hash on the same schedule of connections whose lifetimes are heavy-tailed (Pareto):
// the live share of each backend stays closer to its weight.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "stats.h"
#include "steering_fixture.h"

namespace tcpshift::testing {
namespace {

constexpr size_t kSteps = 400;   // connections opened, one per step
constexpr size_t kWarmup = 50;   // steps before the live shares are judged
constexpr int kBackends = 4;

// How many steps each connection stays open: Pareto with scale 20 and shape 1.1 (a heavy tail:
// most live tens of steps, a few outlive the run), drawn once so that both modes see the same
// schedule.
std::vector<size_t> pareto_lifetimes() {
    std::mt19937 rng(20261127);
    std::uniform_real_distribution<double> u(1e-9, 1.0);
    std::vector<size_t> out;
    for (size_t i = 0; i < kSteps; ++i)
        out.push_back(std::min<size_t>(kSteps, static_cast<size_t>(std::ceil(20.0 / std::pow(u(rng), 1 / 1.1)))));
    return out;
}

// A connection to 127.0.0.1:31400 from 127.3.x.y, with the first word of the backend's reply.
struct Live {
    Fd fd;
    std::string backend;
    size_t closes_at;
};

std::optional<Live> open_from(size_t i, size_t closes_at) {
    Live c{Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)), "", closes_at};
    timeval tv{.tv_sec = 3, .tv_usec = 0};
    ::setsockopt(c.fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in from{.sin_family = AF_INET, .sin_port = 0,
                     .sin_addr = {htonl((127u << 24) | (3u << 16) | static_cast<uint32_t>(i + 1))}};
    sockaddr_in to{.sin_family = AF_INET, .sin_port = htons(31400), .sin_addr = {htonl(INADDR_LOOPBACK)}};
    if (::bind(c.fd.get(), reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0 ||
        ::connect(c.fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0 ||
        ::send(c.fd.get(), "x\n", 2, MSG_NOSIGNAL) != 2)
        return std::nullopt;
    char ch;
    while (c.backend.size() < 64 && ::read(c.fd.get(), &ch, 1) == 1 && ch != '\n') c.backend += ch;
    c.backend = c.backend.substr(0, c.backend.find(' '));
    if (c.backend.empty()) return std::nullopt;
    return c;
}

// Runs the schedule and returns the mean, over the judged steps, of the largest distance of a
// backend's share of the open connections from its weight (1/4 each).
double live_share_error(const std::vector<size_t>& lifetimes, size_t* failures) {
    std::vector<Live> open;
    double error_sum = 0;
    size_t judged = 0;
    for (size_t step = 0; step < kSteps; ++step) {
        std::erase_if(open, [&](const Live& c) { return c.closes_at <= step; });
        // The backends' counts fall as the closes complete: sock_ops counts at TCP_CLOSE.
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        auto c = open_from(step, step + lifetimes[step]);
        if (!c) {
            ++*failures;
            continue;
        }
        open.push_back(std::move(*c));
        if (step < kWarmup) continue;
        std::map<std::string, size_t> count;
        for (const auto& o : open) ++count[o.backend];
        double worst = 0;
        for (const char* b : {"a", "b", "c", "d"})
            worst = std::max(worst, std::abs(static_cast<double>(count[b]) / open.size() - 1.0 / kBackends));
        error_sum += worst;
        ++judged;
    }
    return judged ? error_sum / judged : 1.0;
}

TEST_F(SteeringTest, LeastConnKeepsLiveSharesCloserToTheWeightsThanTheHash) {
    std::vector<Child> backends;
    const char* names[kBackends] = {"a", "b", "c", "d"};
    std::vector<std::string> addresses;
    for (int i = 0; i < kBackends; ++i) {
        addresses.push_back("127.0.0.1:" + std::to_string(9001 + i));
        backends.push_back(start_echo(netns(), addresses.back(), names[i]));
    }
    const auto config = [&](const std::string& policy) {
        return traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])", {{"v1", 100, addresses}}, policy);
    };
    const std::vector<size_t> lifetimes = pareto_lifetimes();
    auto in = enter();

    apply(config(""));
    size_t hash_failures = 0;
    const double hash_error = live_share_error(lifetimes, &hash_failures);

    apply(config("  policy:\n    loadBalancer: {simple: LEAST_CONN}\n"));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the hash run's closes end
    size_t least_failures = 0;
    const double least_error = live_share_error(lifetimes, &least_failures);

    std::cout << "[ figures ] live-share error (mean over " << kSteps - kWarmup
              << " steps of the largest |share - 25%|), Pareto(1.1) lifetimes: hash " << hash_error * 100
              << " points, LEAST_CONN " << least_error * 100 << " points\n";
    EXPECT_EQ(hash_failures, 0u);
    EXPECT_EQ(least_failures, 0u);
    // Two choices among four backends keep the live shares far closer than independent draws:
    // about 2 points here, against 5 to 9 for the hash (and for draws at random).
    EXPECT_LT(least_error, hash_error * 0.7) << "hash " << hash_error << ", LEAST_CONN " << least_error;
    EXPECT_LT(least_error, 0.04) << "hash " << hash_error << ", LEAST_CONN " << least_error;
}

// The second choice stays in the first's subset: the split between subsets is the weights'.
TEST_F(SteeringTest, LeastConnKeepsTheSplitBetweenSubsetsByWeight) {
    std::vector<Child> backends;
    const char* names[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; ++i) backends.push_back(start_echo(netns(), "127.0.0.1:" + std::to_string(9001 + i), names[i]));
    apply(traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])",
                        {{"v1", 20, {"127.0.0.1:9001", "127.0.0.1:9002"}}, {"v2", 80, {"127.0.0.1:9003", "127.0.0.1:9004"}}},
                        "  policy:\n    loadBalancer: {simple: LEAST_REQUEST}\n"));
    auto in = enter();
    const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), kConnections);
    ASSERT_EQ(t.failures, 0u) << t.str();
    const SplitVerdict v = chi_square_split({t["a"] + t["b"], t["c"] + t["d"]}, {20, 80});
    EXPECT_GE(v.p_value, kAlpha) << t.str() << "\n" << v.table;
    for (const char* b : names) EXPECT_GT(t[b], 0u) << b << " took nothing: " << t.str();
}

}  // namespace
}  // namespace tcpshift::testing
