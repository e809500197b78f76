// Lifecycles that must never route to a socket the user did not configure: a backend's
// address changes, a new address has nothing listening yet, a SO_REUSEPORT group loses the
// member that joined last, the biggest backend dies beside a small canary. Clients come from
// many loopback sources, so each connection is an independent draw of the hash.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "client.h"
#include "netns_fixture.h"
#include "stats.h"
#include "bpf/abi.h"
#include "dataplane/pins.h"

namespace tcpshift::testing {
namespace {

class TrustTest : public NetnsTest {
   protected:
    nlohmann::json json_of(const std::vector<std::string>& args) {
        const auto r = tcpshift_here(args);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return nlohmann::json::parse(r.out, nullptr, false);
    }
    // The backend entry of `address` in `status --json` or `stats --json`.
    static nlohmann::json backend(const nlohmann::json& doc, const std::string& address) {
        for (const auto& svc : doc["services"])
            for (const auto& subset : svc["subsets"])
                for (const auto& b : subset["backends"])
                    if (b["address"] == address) return b;
        return nullptr;
    }
};

std::string shift(const std::string& v1, int w1, const std::string& v2, int w2) {
    return "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: tcp-echo}\nspec:\n"
           "  listen: [\"0.0.0.0:31400\"]\n  subsets:\n"
           "  - {name: v1, weight: " + std::to_string(w1) + ", backends: [\"" + v1 + "\"]}\n"
           "  - {name: v2, weight: " + std::to_string(w2) + ", backends: [\"" + v2 + "\"]}\n";
}

// Blue/green by apply: v2 moves from one running backend to another in one apply. From then
// on the retired backend answers nothing, and the counters are the new backend's.
TEST_F(TrustTest, BlueGreenByApplyMovesTheShareToTheNewBackend) {
    Child one = start_echo(netns(), "127.0.0.1:9001", "one");
    Child blue = start_echo(netns(), "127.0.0.1:9002", "blue");
    Child green = start_echo(netns(), "127.0.0.1:9003", "green");
    apply(shift("127.0.0.1:9001", 50, "127.0.0.1:9002", 50));
    Tally before;
    {
        auto in = enter();
        before = tally_from_many_sources(endpoint("127.0.0.1:31400"), 200);
        ASSERT_EQ(before.failures, 0u) << before.str();
        ASSERT_GT(before["blue"], 0u) << before.str();
    }
    apply(shift("127.0.0.1:9001", 50, "127.0.0.1:9003", 50));
    const size_t n = 1500;
    Tally t;
    {
        auto in = enter();
        t = tally_from_many_sources(endpoint("127.0.0.1:31400"), n);
    }
    EXPECT_EQ(t.failures, 0u) << t.str();
    EXPECT_EQ(t["blue"], 0u) << "the retired backend still answers: " << t.str();
    const auto v = chi_square_split({t["one"], t["green"]}, {50, 50});
    EXPECT_GE(v.p_value, kAlpha) << t.str() << "\n" << v.table;

    const auto status = json_of({"status", "--json"});
    EXPECT_TRUE(backend(status, "127.0.0.1:9003")["ready"].get<bool>());
    EXPECT_TRUE(backend(status, "127.0.0.1:9002").is_null());
    const auto stats = json_of({"stats", "--json"});
    EXPECT_EQ(backend(stats, "127.0.0.1:9003")["opened"].get<uint64_t>(), t["green"]);
    EXPECT_EQ(backend(stats, "127.0.0.1:9001")["opened"].get<uint64_t>(), before["one"] + t["one"]);
    EXPECT_EQ(tcpshift_here({"verify"}).exit_code, 0);
}

// The new address has nothing listening yet: status says so, and the old server at the old
// address gets nothing; v2's share falls back to v1 until the new backend starts.
TEST_F(TrustTest, ANewAddressWhereNothingListensIsNotReadyAndTheOldServerGetsNothing) {
    Child one = start_echo(netns(), "127.0.0.1:9001", "one");
    Child old = start_echo(netns(), "127.0.0.1:9002", "old");
    apply(shift("127.0.0.1:9001", 50, "127.0.0.1:9002", 50));
    apply(shift("127.0.0.1:9001", 50, "127.0.0.1:9004", 50));
    const auto status = json_of({"status", "--json"});
    EXPECT_FALSE(backend(status, "127.0.0.1:9004")["ready"].get<bool>());
    EXPECT_TRUE(backend(status, "127.0.0.1:9004")["foreign_sockets"].empty()) << status.dump();
    {
        auto in = enter();
        const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), 300);
        EXPECT_EQ(t.failures, 0u) << t.str();
        EXPECT_EQ(t["old"], 0u) << "the retired server answered: " << t.str();
        EXPECT_EQ(t["one"], 300u) << t.str();
    }
    const auto stats = json_of({"stats", "--json"});
    EXPECT_EQ(backend(stats, "127.0.0.1:9004")["opened"].get<uint64_t>(), 0u);
    EXPECT_EQ(backend(stats, "127.0.0.1:9001")["opened"].get<uint64_t>(), 300u);

    Child fresh = start_echo(netns(), "127.0.0.1:9004", "new");
    auto in = enter();
    const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), 300);
    EXPECT_EQ(t["old"], 0u) << t.str();
    EXPECT_GT(t["new"], 0u) << "the new backend registered itself when it started: " << t.str();
}

// verify and status read the socket the kernel holds for each backend: one that listens
// elsewhere is named, and the backend it was put under is not ready by it.
TEST_F(TrustTest, VerifyNamesASocketThatDoesNotBelongToItsBackend) {
    Child one = start_echo(netns(), "127.0.0.1:9001", "one");
    apply(shift("127.0.0.1:9001", 50, "127.0.0.1:9002", 50));
    ASSERT_EQ(tcpshift_here({"verify"}).exit_code, 0);
    const uint32_t v2 = json_of({"status", "--json"})["services"][0]["subsets"][1]["backends"][0]["id"];
    Fd stray;
    {
        auto in = enter();
        stray = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_storage ss;
        const socklen_t len = to_sockaddr(endpoint("127.0.0.1:9005"), &ss);
        ASSERT_EQ(::bind(stray.get(), reinterpret_cast<sockaddr*>(&ss), len), 0);
        ASSERT_EQ(::listen(stray.get(), 8), 0);
    }
    Fd sockets(bpf_obj_get((pin_dir(netns_inode()) + "/sockets").c_str()));
    ASSERT_TRUE(sockets);
    const uint32_t key = TS_SOCKET_KEY(v2, 0);
    const uint64_t fd = static_cast<uint64_t>(stray.get());
    ASSERT_EQ(bpf_map_update_elem(sockets.get(), &key, &fd, BPF_ANY), 0);

    const auto r = tcpshift_here({"verify"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.out.find("backend 127.0.0.1:9002 (id " + std::to_string(v2) +
                         "): the SOCKHASH holds a listener on 127.0.0.1:9005, which does not serve 127.0.0.1:9002"),
              std::string::npos)
        << r.out;
    const auto status = tcpshift_here({"status"});
    EXPECT_NE(status.out.find("127.0.0.1:9002  socket  no, holds listener on 127.0.0.1:9005"), std::string::npos) << status.out;
    const auto doc = json_of({"status", "--json"});
    EXPECT_FALSE(backend(doc, "127.0.0.1:9002")["ready"].get<bool>());
}

// A SO_REUSEPORT group is one backend: it serves while any member listens, whichever joined
// last, with no agent running.
TEST_F(TrustTest, AReuseportGroupServesWhileAnyMemberListens) {
    Child first = start_echo(netns(), "127.0.0.1:9001", "one-a", {"--reuseport"});
    Child two = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(shift("127.0.0.1:9001", 50, "127.0.0.1:9002", 50));  // adopts the first member
    Child second = start_echo(netns(), "127.0.0.1:9001", "one-b", {"--reuseport"});  // registers itself
    Child last = start_echo(netns(), "127.0.0.1:9001", "one-c", {"--reuseport"});
    auto v1_tally = [&] {
        auto in = enter();
        const Tally t = tally_from_many_sources(endpoint("127.0.0.1:31400"), 400);
        EXPECT_EQ(t.failures, 0u) << t.str();
        return t;
    };
    last.stop(SIGKILL);
    Tally t = v1_tally();
    EXPECT_GT(t["one-a"] + t["one-b"], 100u) << "v1 still serves after its last member died: " << t.str();
    EXPECT_EQ(t["one-c"], 0u);
    first.stop(SIGKILL);
    t = v1_tally();
    EXPECT_GT(t["one-b"], 100u) << t.str();
    EXPECT_TRUE(backend(json_of({"status", "--json"}), "127.0.0.1:9001")["ready"].get<bool>());
    second.stop(SIGKILL);
    t = v1_tally();
    EXPECT_EQ(t["two"], 400u) << t.str();
    EXPECT_FALSE(backend(json_of({"status", "--json"}), "127.0.0.1:9001")["ready"].get<bool>());
}

// The biggest backend dies beside a 2% canary: its share goes to the live ones by weight, so
// the canary takes 2/50 of the traffic, not most of the dead one's share.
TEST_F(TrustTest, ACanaryKeepsItsProportionWhenTheBiggestBackendDies) {
    Child canary = start_echo(netns(), "127.0.0.1:9001", "canary");
    Child stable = start_echo(netns(), "127.0.0.1:9002", "stable");
    Child big = start_echo(netns(), "127.0.0.1:9003", "big");
    apply("apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: web}\nspec:\n"
          "  listen: [\"0.0.0.0:31400\"]\n  subsets:\n"
          "  - {name: big, weight: 50, backends: [\"127.0.0.1:9003\"]}\n"
          "  - {name: canary, weight: 2, backends: [\"127.0.0.1:9001\"]}\n"
          "  - {name: stable, weight: 48, backends: [\"127.0.0.1:9002\"]}\n");
    big.stop(SIGKILL);
    const size_t n = 3000;
    Tally t;
    {
        auto in = enter();
        t = tally_from_many_sources(endpoint("127.0.0.1:31400"), n);
    }
    EXPECT_EQ(t.failures, 0u) << t.str();
    ASSERT_GE(n, sample_size_for({2, 48}, 0.02));
    const auto v = chi_square_split({t["canary"], t["stable"]}, {2, 48});
    EXPECT_GE(v.p_value, kAlpha) << "the canary took " << t["canary"] << " of " << n << ": " << t.str() << "\n"
                                 << v.table;
    const auto stats = json_of({"stats", "--json"});
    const uint64_t fallbacks = stats["services"][0]["fallbacks"];
    EXPECT_GT(fallbacks, n / 3) << "about half the connections fell back";
    EXPECT_EQ(stats["services"][0]["lookups"].get<uint64_t>(), n);
}

// Two services share a backend: each counts the connections that came through its own
// frontends, so its shares add up to 100%; the backend's total adds direct connections.
TEST_F(TrustTest, TwoServicesSharingABackendCountApart) {
    Child one = start_echo(netns(), "127.0.0.1:9001", "one");
    Child two = start_echo(netns(), "127.0.0.1:9002", "two");
    apply("apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: a}\nspec:\n"
          "  listen: [\"0.0.0.0:31400\"]\n  subsets:\n"
          "  - {name: v1, weight: 50, backends: [\"127.0.0.1:9001\"]}\n"
          "  - {name: v2, weight: 50, backends: [\"127.0.0.1:9002\"]}\n"
          "---\napiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: b}\nspec:\n"
          "  listen: [\"0.0.0.0:31401\"]\n  subsets:\n"
          "  - {name: only, weight: 1, backends: [\"127.0.0.1:9001\"]}\n");
    Tally a, b, direct;
    {
        auto in = enter();
        a = tally_from_many_sources(endpoint("127.0.0.1:31400"), 300);
        b = tally_from_many_sources(endpoint("127.0.0.1:31401"), 100);
        direct = tally(endpoint("127.0.0.1:9001"), 20);
    }
    ASSERT_EQ(a.failures + b.failures + direct.failures, 0u);
    const auto stats = json_of({"stats", "--json"});
    for (const auto& svc : stats["services"]) {
        uint64_t steered = 0;
        for (const auto& subset : svc["subsets"]) steered += subset["steered"].get<uint64_t>();
        EXPECT_EQ(steered, svc["lookups"].get<uint64_t>()) << svc["service"] << ": shares add up to 100%";
    }
    auto route = [&](const std::string& service, const std::string& address) {
        for (const auto& svc : stats["services"])
            if (svc["service"] == service)
                for (const auto& subset : svc["subsets"])
                    for (const auto& x : subset["backends"])
                        if (x["address"] == address) return x["opened"].get<uint64_t>();
        return uint64_t{0};
    };
    EXPECT_EQ(route("a", "127.0.0.1:9001"), a["one"]);
    EXPECT_EQ(route("a", "127.0.0.1:9002"), a["two"]);
    EXPECT_EQ(route("b", "127.0.0.1:9001"), 100u);
    uint64_t total = 0;
    for (const auto& x : stats["backends"])
        if (x["address"] == "127.0.0.1:9001") total = x["opened"].get<uint64_t>();
    EXPECT_EQ(total, a["one"] + 100 + 20) << "the backend's total counts both services and direct connections";
}

// A backend id given to a new address while connections of its old address are still open:
// their close and bytes are not the new address's.
TEST_F(TrustTest, ConnectionsOfARetiredAddressNeverCountForTheIdsNextAddress) {
    Child one = start_echo(netns(), "127.0.0.1:9001", "one");
    Child old = start_echo(netns(), "127.0.0.1:9002", "old");
    Child mid = start_echo(netns(), "127.0.0.1:9003", "mid");
    apply(shift("127.0.0.1:9001", 0, "127.0.0.1:9002", 100));
    const uint32_t old_id = json_of({"status", "--json"})["services"][0]["subsets"][1]["backends"][0]["id"];
    std::vector<EchoConnection> kept;
    {
        auto in = enter();
        for (int i = 0; i < 4; ++i) {
            EchoResult failure;
            kept.push_back(EchoConnection::open(endpoint("127.0.0.1:31400"), std::chrono::seconds(2), &failure));
            ASSERT_TRUE(kept.back().connected()) << failure.error;
            ASSERT_TRUE(kept.back().exchange("x", std::chrono::seconds(2)).reply.starts_with("old"));
        }
    }
    apply(shift("127.0.0.1:9001", 0, "127.0.0.1:9003", 100));  // 9002's id is quarantined
    apply(shift("127.0.0.1:9001", 0, "127.0.0.1:9004", 100));  // and free again: 9004 may get it
    const auto status = json_of({"status", "--json"});
    ASSERT_EQ(status["services"][0]["subsets"][1]["backends"][0]["id"].get<uint32_t>(), old_id)
        << "the scenario needs the id reused: " << status.dump();
    kept.clear();  // the retired address's connections close now
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto stats = json_of({"stats", "--json"});
    EXPECT_EQ(backend(stats, "127.0.0.1:9004")["closed"].get<uint64_t>(), 0u) << stats.dump();
    EXPECT_EQ(backend(stats, "127.0.0.1:9004")["bytes_received"].get<uint64_t>(), 0u) << stats.dump();
    for (const auto& b : stats["backends"]) {
        if (b["address"] == "127.0.0.1:9004") {
            EXPECT_EQ(b["closed"].get<uint64_t>(), 0u) << stats.dump();
        }
    }
}

// tcpshift under `ip netns exec` would pin into a bpffs that dies with it: refused, naming
// --netns, and nothing changes.
TEST_F(TrustTest, IpNetnsExecIsRefusedNamingTheFlag) {
    apply(shift("127.0.0.1:9001", 50, "127.0.0.1:9002", 50));
    const auto before = tcpshift_here({"status", "--json"}).out;
    for (const std::vector<std::string>& args : {std::vector<std::string>{"status"},
                                                 {"apply", "-f", write_temp_file("x.yaml", shift("127.0.0.1:9001", 10,
                                                                                                 "127.0.0.1:9002", 90))}}) {
        std::vector<std::string> argv{"/sbin/ip", "netns", "exec", netns(), TCPSHIFT_BIN};
        argv.insert(argv.end(), args.begin(), args.end());
        const auto r = run_command(argv);
        EXPECT_EQ(r.exit_code, 1) << r.out;
        EXPECT_NE(r.err.find("runs under `ip netns exec " + netns() + "`"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("run `tcpshift --netns " + netns() + " ...` instead"), std::string::npos) << r.err;
    }
    EXPECT_EQ(tcpshift_here({"status", "--json"}).out, before);
}

}  // namespace
}  // namespace tcpshift::testing
