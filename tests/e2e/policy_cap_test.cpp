// connectionPool.tcp.maxConnections enforced in the kernel: a burst of many times the cap in
// parallel handshakes leaves each backend at its cap (as `ss` sees it), the rest refused with a
// reset and counted; at the cap a backend's share goes to the others by weight, not to its
// neighbour; and a closed connection gives its place back.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <regex>
#include <string>
#include <vector>

#include "base/fd.h"
#include "process.h"
#include "stats.h"
#include "steering_fixture.h"

namespace tcpshift::testing {
namespace {

std::string capped(const std::vector<Subset>& subsets, int max_connections) {
    return traffic_shift("tcp-echo", R"(["127.0.0.1:31400"])", subsets,
                         "  policy:\n    connectionPool:\n      tcp: {maxConnections: " +
                             std::to_string(max_connections) + "}\n");
}

// What became of a burst of connections.
struct Burst {
    std::vector<Fd> open;                // answered, still open
    std::map<std::string, size_t> by;    // reply prefix -> connections answered
    size_t refused = 0;                  // ECONNREFUSED: a reset to the SYN
    size_t other = 0;                    // anything else
};

// Starts n non-blocking connects to 127.0.0.1:port together. With `hold` (the namespace's
// final ACKs held, see HeldHandshakes), every handshake is in flight at once, past sk_lookup and
// not yet established, until the hold is released: the burst a cap must survive. Then sends a
// line on each connection and reads the reply; keeps those connections open.
Burst burst(uint16_t port, size_t n, HeldHandshakes* hold = nullptr) {
    Burst b;
    std::vector<Fd> socks, connected;
    sockaddr_in to{.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = {htonl(INADDR_LOOPBACK)}};
    for (size_t i = 0; i < n; ++i) {
        Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
        if (!fd) {
            ++b.other;
            continue;
        }
        connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to));
        socks.push_back(std::move(fd));
    }
    for (auto& fd : socks) {
        pollfd p{.fd = fd.get(), .events = POLLOUT, .revents = 0};
        int err = ETIMEDOUT;
        socklen_t len = sizeof(err);
        if (poll(&p, 1, 3000) == 1) getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == ECONNREFUSED) {
            ++b.refused;
        } else if (err != 0) {
            ++b.other;
        } else {
            connected.push_back(std::move(fd));
        }
    }
    if (hold) hold->release();
    for (auto& fd : connected) {
        fcntl(fd.get(), F_SETFL, 0);
        timeval tv{.tv_sec = 5, .tv_usec = 0};
        setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        std::string reply;
        char c;
        if (write(fd.get(), "x\n", 2) == 2)
            while (reply.size() < 64 && read(fd.get(), &c, 1) == 1 && c != '\n') reply += c;
        if (reply.empty()) {
            ++b.other;
            continue;
        }
        ++b.by[reply.substr(0, reply.find(' '))];
        b.open.push_back(std::move(fd));
    }
    return b;
}

// Established connections each backend process holds on port 31400, as `ss` sees them: pid ->
// count. A steered connection keeps the frontend's address, so the owner tells the backend.
std::map<int, size_t> established_by_pid(const std::string& netns) {
    const auto ss = run_command({"/usr/bin/ss", "-tnpH", "state", "established", "( sport = :31400 )"},
                                Placement{.netns = netns});
    std::map<int, size_t> out;
    static const std::regex pid(R"(pid=([0-9]+))");
    std::istringstream lines(ss.out);
    for (std::string line; std::getline(lines, line);) {
        std::smatch m;
        if (std::regex_search(line, m, pid)) ++out[std::stoi(m[1].str())];
    }
    return out;
}

TEST_F(SteeringTest, ABurstOfManyTimesTheCapStaysAtTheCapAndTheRestIsRefusedAndCounted) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(capped({{"v1", 50, {"127.0.0.1:9001"}}, {"v2", 50, {"127.0.0.1:9002"}}}, 5));
    Burst b;
    {
        HeldHandshakes hold(netns(), 31400);
        ASSERT_TRUE(hold.held()) << "nft: " << hold.error();
        auto in = enter();
        b = burst(31400, 60, &hold);
    }
    EXPECT_EQ(b.by["one"], 5u) << "refused " << b.refused << ", other " << b.other;
    EXPECT_EQ(b.by["two"], 5u) << "refused " << b.refused << ", other " << b.other;
    EXPECT_EQ(b.refused, 50u) << "every connection past the caps is refused at once, none times out";
    EXPECT_EQ(b.other, 0u);
    const auto held = established_by_pid(netns());
    EXPECT_EQ(held.size(), 2u);
    for (const auto& [pid, count] : held) EXPECT_LE(count, 5u) << "pid " << pid << " holds more than the cap";

    const auto stats = tcpshift_here({"stats", "--json"});
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    const auto j = nlohmann::json::parse(stats.out);
    EXPECT_EQ(j["services"][0]["overflow"].get<uint64_t>(), 50u) << stats.out;

    const auto status = tcpshift_here({"status"});
    EXPECT_NE(status.out.find("5 of max 5"), std::string::npos) << status.out;

    // Closed connections give their places back.
    b.open.clear();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto in = enter();
    Burst again = burst(31400, 10);
    EXPECT_EQ(again.by["one"] + again.by["two"], 10u) << "refused " << again.refused;
}

TEST_F(SteeringTest, AtItsCapABackendsShareGoesToTheOthersByWeight) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    Child v3 = start_echo(netns(), "127.0.0.1:9003", "three");
    apply(capped({{"v1", 50, {"127.0.0.1:9001"}}, {"v2", 10, {"127.0.0.1:9002"}}, {"v3", 40, {"127.0.0.1:9003"}}}, 2));
    auto in = enter();
    // Fill v1: keep the connections it answers until it holds its cap.
    std::vector<Fd> on_v1;
    for (int attempt = 0; attempt < 100 && on_v1.size() < 2; ++attempt) {
        Burst one = burst(31400, 1);
        if (one.by.count("one")) on_v1.push_back(std::move(one.open.front()));
    }
    ASSERT_EQ(on_v1.size(), 2u) << "v1 answered fewer than 2 of 100 connections";

    // v1 is full: its 50% goes to v2 and v3 as 10 to 40, not all to its neighbour in the list.
    const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), kConnections);
    ASSERT_EQ(t.failures, 0u) << t.str();
    EXPECT_EQ(t["one"], 0u) << t.str();
    const SplitVerdict v = chi_square_split({t["two"], t["three"]}, {10, 40});
    EXPECT_GE(v.p_value, kAlpha) << t.str() << "\n" << v.table;

    // Released, v1 takes its share again.
    on_v1.clear();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const Tally after = tally_from_many_sources(endpoint("127.0.0.1:31400"), kConnections);
    ASSERT_EQ(after.failures, 0u) << after.str();
    const SplitVerdict back = chi_square_split({after["one"], after["two"], after["three"]}, {50, 10, 40});
    EXPECT_GE(back.p_value, kAlpha) << after.str() << "\n" << back.table;
}

}  // namespace
}  // namespace tcpshift::testing
