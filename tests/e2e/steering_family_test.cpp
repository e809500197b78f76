// Address families: an IPv6 frontend, IPv4 clients of a dual-stack listener, both families
// split alike over dual-stack backends, and a frontend family no backend can take refused.
#include <gtest/gtest.h>

#include <bpf/bpf.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "base/fd.h"
#include "bpf/abi.h"
#include "dataplane/pins.h"
#include "stats.h"
#include "steering_fixture.h"

namespace tcpshift::testing {
namespace {

// The README's dual-stack form: both frontends, each subset named by both its addresses, one
// dual-stack listener per backend.
std::string tcp_echo_dual_stack(int v1, int v2) {
    return traffic_shift("tcp-echo", R"(["0.0.0.0:31400", "[::]:31400"])",
                         {{"v1", v1, {"127.0.0.1:9001", "[::1]:9001"}}, {"v2", v2, {"127.0.0.1:9002", "[::1]:9002"}}});
}

// The tables the kernel holds, as (service id, family index).
std::set<std::pair<uint32_t, uint32_t>> held_tables(const std::string& pins) {
    Fd tables(bpf_obj_get((pins + "/tables").c_str()));
    std::set<std::pair<uint32_t, uint32_t>> held;
    EXPECT_TRUE(tables);
    if (!tables) return held;
    uint32_t id = 0;
    int bound = 1000;
    for (const uint32_t* prev = nullptr; bound-- > 0 && bpf_map_get_next_key(tables.get(), prev, &id) == 0; prev = &id)
        held.emplace(id / TS_TABLE_FAMILIES, id % TS_TABLE_FAMILIES);
    return held;
}

// Only the tables in use hold memory: one for each family a service's frontends serve. A
// change replaces them in place, a deleted service takes its tables along, a stray one is
// named by verify and swept by the next change, and the slots (positions in the table's
// backends) send each family to the weighted backends.
TEST_F(SteeringTest, TheKernelHoldsALiveTableForEachFamilyAFrontendServesAndNoOther) {
    Child v1 = start_echo(netns(), "[::]:9001", "one");
    Child v2 = start_echo(netns(), "[::]:9002", "two");
    Child solo = start_echo(netns(), "127.0.0.1:9005", "five");
    apply(tcp_echo_dual_stack(50, 50) + "---\n" +
          traffic_shift("solo", R"(["127.0.0.1:31500"])", {{"only", 100, {"127.0.0.1:9005"}}}));
    const std::string pins = pin_dir(netns_inode());
    auto held = held_tables(pins);
    ASSERT_EQ(held.size(), 3u) << "tcp-echo: IPv4 and IPv6; solo: IPv4";
    std::map<uint32_t, int> families_of;
    for (const auto& [service, family] : held) ++families_of[service];
    ASSERT_EQ(families_of.size(), 2u);

    for (const auto& [weights, reply] : {std::pair{"v1=0 v2=100", "two"}, std::pair{"v1=100 v2=0", "one"}}) {
        const std::string w(weights);
        const auto r = tcpshift_here({"set", "tcp-echo", w.substr(0, w.find(' ')), w.substr(w.find(' ') + 1)});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(held_tables(pins), held) << "after set " << w;
        auto in = enter();
        for (const char* target : {"127.0.0.1:31400", "[::1]:31400"}) {
            const Endpoint ep = endpoint(target);
            const Tally t = ep.family == AF_INET ? tally_from_many_sources(ep, 40) : tally(ep, 40);
            EXPECT_EQ(t[reply], 40u) << target << " after set " << w << ": " << t.str();
        }
        const Tally s = tally(endpoint("127.0.0.1:31500"), 10);
        EXPECT_EQ(s["five"], 10u) << s.str();
    }

    const auto d = tcpshift_here({"delete", "trafficshift", "solo"});
    ASSERT_EQ(d.exit_code, 0) << d.err;
    held = held_tables(pins);
    EXPECT_EQ(held.size(), 2u) << "solo's table went with it";
    const auto verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

    // A table nobody configured, left by hand: verify names it, the next change sweeps it.
    {
        Fd tables(bpf_obj_get((pins + "/tables").c_str()));
        auto stray = std::make_unique<ts_table>();
        const uint32_t id = TS_TABLE_ID(77, 1);
        ASSERT_EQ(bpf_map_update_elem(tables.get(), &id, stray.get(), BPF_NOEXIST), 0);
    }
    const auto named = tcpshift_here({"verify"});
    EXPECT_EQ(named.exit_code, 1) << named.out << named.err;
    EXPECT_NE((named.out + named.err).find("table 155 (service id 77, IPv6 clients) is held, but no configured service has it"),
              std::string::npos)
        << named.out << named.err;
    ASSERT_EQ(tcpshift_here({"set", "tcp-echo", "v1=30", "v2=70"}).exit_code, 0);
    EXPECT_EQ(held_tables(pins), held);
    const auto swept = tcpshift_here({"verify"});
    EXPECT_EQ(swept.exit_code, 0) << swept.out << swept.err;
}

TEST_F(SteeringTest, IPv6Frontend) {
    Child v1 = start_echo(netns(), "[::1]:9001", "one");
    Child v2 = start_echo(netns(), "[::1]:9002", "two");
    apply(traffic_shift("echo6", R"(["[::]:31400"])", {{"v1", 30, {"[::1]:9001"}}, {"v2", 70, {"[::1]:9002"}}}));
    auto in = enter();
    expect_split(endpoint("[::1]:31400"), {"one", "two"}, {30, 70});
}

TEST_F(SteeringTest, IPv4ClientsReachADualStackListener) {
    // The backends listen on [::] (IPv4 too); the config names them by their IPv4 address.
    Child v1 = start_echo(netns(), "[::]:9001", "one");
    Child v2 = start_echo(netns(), "[::]:9002", "two");
    apply(tcp_echo(40, 60));
    {
        auto in = enter();
        expect_split(endpoint("127.0.0.1:31400"), {"one", "two"}, {40, 60});
    }
    // sock_ops accounts them too, though the accepted sockets carry v4-mapped addresses.
    const auto stats = tcpshift_here({"stats", "--json"});
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    uint64_t opened = 0;
    const auto j = nlohmann::json::parse(stats.out);
    for (const auto& subset : j["services"][0]["subsets"])
        for (const auto& b : subset["backends"]) opened += b["opened"].get<uint64_t>();
    EXPECT_EQ(opened, kConnections) << stats.out;
}

// Dual-stack: IPv4 and IPv6 clients alike get the split, and one [::] listener backs both
// entries of its subset.
TEST_F(SteeringTest, IPv4AndIPv6ClientsGetTheSplitFromDualStackBackends) {
    Child v1 = start_echo(netns(), "[::]:9001", "one");
    Child v2 = start_echo(netns(), "[::]:9002", "two");
    apply(tcp_echo_dual_stack(40, 60));
    const auto status = tcpshift_here({"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    const auto j = nlohmann::json::parse(status.out);
    for (const auto& subset : j["services"][0]["subsets"])
        for (const auto& b : subset["backends"])
            EXPECT_TRUE(b["ready"].get<bool>()) << b["address"] << " is backed by the dual-stack listener";
    auto in = enter();
    const Tally v4 = tally_from_many_sources(endpoint("127.0.0.1:31400"), kConnections);
    ASSERT_EQ(v4.failures, 0u) << v4.str();
    const auto v = chi_square_split({v4["one"], v4["two"]}, {40, 60});
    EXPECT_GE(v.p_value, kAlpha) << "IPv4 clients: " << v4.str() << "\n" << v.table;
    expect_split(endpoint("[::1]:31400"), {"one", "two"}, {40, 60});
}

// A frontend family that no backend can take is refused with the reason, and nothing changes:
// the README's old example reset every IPv6 client.
TEST_F(SteeringTest, AnIPv6FrontendOverIPv4BackendsIsRefused) {
    apply(tcp_echo(50, 50));
    const auto before = tcpshift_here({"status", "--json"}).out;
    const auto path = write_temp_file(
        "trap.yaml", traffic_shift("tcp-echo", R"(["0.0.0.0:31400", "[::]:31400"])",
                                   {{"v1", 50, {"127.0.0.1:9001"}}, {"v2", 50, {"127.0.0.1:9002"}}}));
    for (const auto& r : {tcpshift_here({"apply", "-f", path}), tcpshift({"explain", "-f", path})}) {
        EXPECT_EQ(r.exit_code, 2) << r.err;
        EXPECT_NE(r.err.find("frontend [::]:31400 takes IPv6 clients, but every backend of the service is IPv4"),
                  std::string::npos)
            << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
    EXPECT_EQ(tcpshift_here({"status", "--json"}).out, before);
}

}  // namespace
}  // namespace tcpshift::testing
