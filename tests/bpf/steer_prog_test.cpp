// BPF_PROG_TEST_RUN on the sk_lookup program with crafted contexts: the socket it selects is
// compared, by cookie, with the listener of the backend the weight table predicts.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>

#include "netns_fixture.h"
#include "stats.h"
#include "bpf/abi.h"
#include "dataplane/dataplane.h"
#include "bpf/flow_hash.h"
#include "dataplane/lookup_run.h"

namespace tcpshift {
namespace {

constexpr uint64_t kSeed = 0x5eed5eed12345678ULL;

Endpoint ep(const std::string& text) { return *parse_endpoint(text); }

// A listening socket on an ephemeral port of `addr`.
struct Listener {
    Fd fd;
    Endpoint local;
    uint64_t cookie = 0;
};

Listener listen_on(const std::string& addr, int family, bool v6only = true) {
    Listener l;
    l.fd = Fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (family == AF_INET6) {
        const int v6 = v6only ? 1 : 0;
        ::setsockopt(l.fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6));
    }
    sockaddr_storage ss;
    socklen_t len = to_sockaddr(*parse_address(addr, 0), &ss);
    EXPECT_EQ(::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), len), 0);
    EXPECT_EQ(::listen(l.fd.get(), 16), 0);
    ::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    const uint16_t port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                                  : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    l.local = *parse_address(addr, port);
    socklen_t cookie_len = sizeof(l.cookie);
    ::getsockopt(l.fd.get(), SOL_SOCKET, SO_COOKIE, &l.cookie, &cookie_len);
    return l;
}

struct RunResult {
    int verdict = -1;     // SK_PASS (1) or SK_DROP (0)
    uint64_t cookie = 0;  // the selected socket, 0 for none
};

class SteerProgramTest : public ::testing::Test {
   protected:
    void SetUp() override {
        TCPSHIFT_REQUIRE_ROOT();
        auto netns = current_netns();
        ASSERT_TRUE(netns);
        netns_ = *netns;
        auto program = SteerProgram::load(kSeed, netns_.cookie);
        ASSERT_TRUE(program) << program.error().message;
        program_ = std::make_unique<SteerProgram>(std::move(*program));
        auto maps = program_->maps();
        ASSERT_TRUE(maps) << maps.error().message;
        maps_ = std::move(*maps);
    }

    // Compiles and installs services given as data, with backends at the listeners' addresses.
    void install(const std::vector<ServiceSpec>& services) {
        auto plan = compile_plan(services, plan_.ids, default_limits());
        ASSERT_TRUE(plan) << plan.error().message;
        const Plan* previous = plan_.services.empty() ? nullptr : &plan_;
        auto keys = install_listener_keys(maps_, *plan, previous, netns_);
        ASSERT_TRUE(keys) << keys.error().message;
        auto ok = install_plan(maps_, *plan, previous, netns_);
        ASSERT_TRUE(ok) << ok.error().message;
        plan_ = std::move(*plan);
    }

    void register_backend(const Listener& l) {
        const uint32_t id = plan_.ids.backends.at(l.local.str());
        ASSERT_TRUE(register_listener(maps_, serving(id, l.local), l.fd.get()));
    }

    RunResult run(const Endpoint& client, const Endpoint& frontend, int protocol = IPPROTO_TCP) {
        auto r = run_lookup(program_->steer_fd(), client, frontend, protocol);
        EXPECT_TRUE(r) << r.error().message;
        return r ? RunResult{.verdict = r->verdict, .cookie = r->cookie} : RunResult{};
    }

    // The backend id the table gives this flow, computed the way the program does.
    uint32_t predicted_backend(const Endpoint& client, const Endpoint& frontend, const std::string& service) {
        const PlanService* svc = plan_.find_service(service);
        const uint32_t hash = svc->affinity == Affinity::kSourceIp
                                  ? ts_source_hash(client.addr.data(), kSeed)
                                  : ts_flow_hash(client.addr.data(), client.port, frontend.addr.data(), frontend.port, kSeed);
        return svc->tables[family_index(client.family)].slots[hash % TS_TABLE_SLOTS];
    }

    ServiceSpec two_subsets(const Listener& a, const Listener& b, uint32_t wa, uint32_t wb,
                            std::vector<Endpoint> listen = {ep("0.0.0.0:31400")}) {
        return ServiceSpec{.name = "tcp-echo",
                           .listen = std::move(listen),
                           .subsets = {{.name = "v1", .weight = wa, .backends = {a.local}},
                                       {.name = "v2", .weight = wb, .backends = {b.local}}}};
    }

    std::unique_ptr<SteerProgram> program_;
    DataplaneMaps maps_;
    NetnsId netns_;
    Plan plan_;
};

TEST_F(SteerProgramTest, SelectsTheBackendTheTablePredicts) {
    Listener v1 = listen_on("127.0.0.1", AF_INET), v2 = listen_on("127.0.0.1", AF_INET);
    install({two_subsets(v1, v2, 20, 80)});
    register_backend(v1);
    register_backend(v2);
    const std::map<uint32_t, uint64_t> cookie_of = {{plan_.ids.backends.at(v1.local.str()), v1.cookie},
                                                    {plan_.ids.backends.at(v2.local.str()), v2.cookie}};
    const Endpoint frontend = ep("127.0.0.1:31400");
    std::map<uint64_t, int> seen;
    for (uint16_t port = 40000; port < 40400; ++port) {
        const Endpoint client = ep("127.0.0.9:" + std::to_string(port));
        const RunResult r = run(client, frontend);
        ASSERT_EQ(r.verdict, SK_PASS);
        ASSERT_EQ(r.cookie, cookie_of.at(predicted_backend(client, frontend, "tcp-echo"))) << "port " << port;
        ++seen[r.cookie];
    }
    EXPECT_EQ(seen.size(), 2u) << "both backends take connections";
    // sk_lookup runs for every packet that finds no socket (SYN, retransmissions, a SYN
    // cookie's ACK), so it counts only refusals; sock_ops counts established connections.
    auto counters = read_service_counters(maps_, plan_.services[0].id);
    ASSERT_TRUE(counters);
    EXPECT_EQ(counters->lookups, 0u);
}

TEST_F(SteerProgramTest, AFrontendWithoutLiveBackendDrops) {
    Listener v1 = listen_on("127.0.0.1", AF_INET), v2 = listen_on("127.0.0.1", AF_INET);
    install({two_subsets(v1, v2, 50, 50)});  // no listener registered
    const RunResult r = run(ep("127.0.0.9:40000"), ep("127.0.0.1:31400"));
    EXPECT_EQ(r.verdict, SK_DROP);
    EXPECT_EQ(r.cookie, 0u);
    auto counters = read_service_counters(maps_, plan_.services[0].id);
    ASSERT_TRUE(counters);
    EXPECT_EQ(counters->no_backend, 1u);
}

TEST_F(SteerProgramTest, OtherPortsAndProtocolsPassUntouched) {
    Listener v1 = listen_on("127.0.0.1", AF_INET), v2 = listen_on("127.0.0.1", AF_INET);
    install({two_subsets(v1, v2, 50, 50, {ep("127.0.0.1:31400")})});
    register_backend(v1);
    register_backend(v2);
    for (const auto& [desc, frontend, protocol] :
         std::vector<std::tuple<const char*, Endpoint, int>>{{"other port", ep("127.0.0.1:31401"), IPPROTO_TCP},
                                                             {"other address", ep("127.0.0.2:31400"), IPPROTO_TCP},
                                                             {"udp", ep("127.0.0.1:31400"), IPPROTO_UDP}}) {
        const RunResult r = run(ep("127.0.0.9:40000"), frontend, protocol);
        EXPECT_EQ(r.verdict, SK_PASS) << desc;
        EXPECT_EQ(r.cookie, 0u) << desc;
    }
}

TEST_F(SteerProgramTest, FallsBackToALiveBackendWhenTheChosenOneHasNoListener) {
    Listener v1 = listen_on("127.0.0.1", AF_INET), v2 = listen_on("127.0.0.1", AF_INET);
    install({two_subsets(v1, v2, 50, 50)});
    register_backend(v1);  // v2 never registers
    const Endpoint frontend = ep("127.0.0.1:31400");
    const uint32_t v2_id = plan_.ids.backends.at(v2.local.str());
    int fell_back = 0;
    for (uint16_t port = 40000; port < 40200; ++port) {
        const Endpoint client = ep("127.0.0.9:" + std::to_string(port));
        const RunResult r = run(client, frontend);
        ASSERT_EQ(r.verdict, SK_PASS);
        ASSERT_EQ(r.cookie, v1.cookie);
        fell_back += predicted_backend(client, frontend, "tcp-echo") == v2_id;
    }
    EXPECT_GT(fell_back, 0);
}

// A dead backend's share goes to the live ones by weight, not to its neighbour in the list:
// a 2% canary beside a 48% stable backend takes 2/50 of what a dead 50% backend leaves.
TEST_F(SteerProgramTest, ADeadBackendsShareGoesToTheLiveOnesByWeight) {
    struct Case {
        const char* desc;
        std::vector<uint32_t> weights;  // the last backend dies
    };
    for (const Case& c : {Case{.desc = "canary 2, stable 48, dead 50", .weights = {2, 48, 50}},
                          Case{.desc = "canary 2, stable 48, dead 50, listed first", .weights = {50, 2, 48}},
                          Case{.desc = "10, 30, dead 60", .weights = {10, 30, 60}}}) {
        SCOPED_TRACE(c.desc);
        std::vector<Listener> listeners;
        ServiceSpec spec{.name = "canary", .listen = {ep("0.0.0.0:31400")}};
        for (size_t i = 0; i < c.weights.size(); ++i) {
            listeners.push_back(listen_on("127.0.0.1", AF_INET));
            spec.subsets.push_back({.name = "s" + std::to_string(i), .weight = c.weights[i], .backends = {listeners[i].local}});
        }
        plan_ = Plan{};
        install({spec});
        // The dead one is the biggest; in the second case it is listed first.
        const size_t dead = std::max_element(c.weights.begin(), c.weights.end()) - c.weights.begin();
        std::map<uint64_t, size_t> index_of;
        for (size_t i = 0; i < listeners.size(); ++i) {
            if (i != dead) register_backend(listeners[i]);
            index_of[listeners[i].cookie] = i;
        }
        const uint32_t dead_id = plan_.ids.backends.at(listeners[dead].local.str());
        // Distinct clients: 10.0.x.y with varied ports, so the draws are independent.
        std::vector<uint64_t> orphans(listeners.size(), 0);
        std::vector<double> expected(listeners.size(), 0);
        for (size_t i = 0; i < listeners.size(); ++i)
            if (i != dead) expected[i] = c.weights[i];
        const Endpoint frontend = ep("127.0.0.1:31400");
        for (uint32_t n = 0; n < 12000; ++n) {
            const Endpoint client =
                ep("10.0." + std::to_string(n / 250) + "." + std::to_string(n % 250 + 1) + ":" + std::to_string(20000 + n % 7919));
            const RunResult r = run(client, frontend);
            ASSERT_EQ(r.verdict, SK_PASS);
            const uint32_t predicted = predicted_backend(client, frontend, "canary");
            if (predicted != dead_id) {
                ASSERT_EQ(plan_.ids.backends.at(listeners[index_of.at(r.cookie)].local.str()), predicted)
                    << "a flow whose backend lives stays on it";
                continue;
            }
            ++orphans[index_of.at(r.cookie)];
        }
        EXPECT_EQ(orphans[dead], 0u);
        const uint64_t total = std::accumulate(orphans.begin(), orphans.end(), uint64_t{0});
        ASSERT_GE(total, testing::sample_size_for(expected, 0.02)) << "enough orphaned flows to judge";
        const auto verdict = testing::chi_square_split(orphans, expected);
        EXPECT_GT(verdict.p_value, testing::kAlpha) << verdict.table;
    }
}

TEST_F(SteerProgramTest, ZeroWeightIsNeverChosenNorAFallback) {
    Listener v1 = listen_on("127.0.0.1", AF_INET), v2 = listen_on("127.0.0.1", AF_INET);
    install({two_subsets(v1, v2, 0, 100)});
    register_backend(v1);
    register_backend(v2);
    for (uint16_t port = 40000; port < 40200; ++port)
        ASSERT_EQ(run(ep("127.0.0.9:" + std::to_string(port)), ep("127.0.0.1:31400")).cookie, v2.cookie);
    // v2 gone: the weight-0 subset still takes nothing; the connection is refused.
    v2.fd.reset();
    EXPECT_EQ(run(ep("127.0.0.9:40000"), ep("127.0.0.1:31400")).verdict, SK_DROP);
}

TEST_F(SteerProgramTest, IPv6FrontendSelectsAnIPv6Listener) {
    Listener v1 = listen_on("::1", AF_INET6), v2 = listen_on("::1", AF_INET6);
    install({two_subsets(v1, v2, 30, 70, {ep("[::]:31400")})});
    register_backend(v1);
    register_backend(v2);
    const Endpoint frontend = ep("[::1]:31400");
    const std::map<uint32_t, uint64_t> cookie_of = {{plan_.ids.backends.at(v1.local.str()), v1.cookie},
                                                    {plan_.ids.backends.at(v2.local.str()), v2.cookie}};
    for (uint16_t port = 50000; port < 50100; ++port) {
        const Endpoint client = ep("[::1]:" + std::to_string(port));
        const RunResult r = run(client, frontend);
        ASSERT_EQ(r.verdict, SK_PASS);
        ASSERT_EQ(r.cookie, cookie_of.at(predicted_backend(client, frontend, "tcp-echo")));
    }
}

TEST_F(SteerProgramTest, IPv4ClientReachesADualStackListener) {
    Listener dual = listen_on("::", AF_INET6, /*v6only=*/false);
    const Endpoint backend = *parse_address("127.0.0.1", dual.local.port);
    install({ServiceSpec{.name = "dual",
                         .listen = {ep("0.0.0.0:31400")},
                         .subsets = {{.name = "v1", .weight = 1, .backends = {backend}}}}});
    ASSERT_TRUE(register_listener(maps_, serving(plan_.ids.backends.at(backend.str()), backend), dual.fd.get()));
    const RunResult r = run(ep("127.0.0.9:40000"), ep("127.0.0.1:31400"));
    EXPECT_EQ(r.verdict, SK_PASS);
    EXPECT_EQ(r.cookie, dual.cookie);
}

TEST_F(SteerProgramTest, SourceIpAffinityIgnoresTheSourcePort) {
    Listener v1 = listen_on("127.0.0.1", AF_INET), v2 = listen_on("127.0.0.1", AF_INET);
    ServiceSpec svc = two_subsets(v1, v2, 50, 50);
    svc.affinity = Affinity::kSourceIp;
    install({svc});
    register_backend(v1);
    register_backend(v2);
    std::map<uint64_t, int> by_client_cookie;
    for (int client = 1; client < 40; ++client) {
        const uint64_t first = run(ep("10.0.0." + std::to_string(client) + ":40000"), ep("127.0.0.1:31400")).cookie;
        for (uint16_t port = 40001; port < 40010; ++port)
            ASSERT_EQ(run(ep("10.0.0." + std::to_string(client) + ":" + std::to_string(port)), ep("127.0.0.1:31400")).cookie,
                      first);
        ++by_client_cookie[first];
    }
    EXPECT_EQ(by_client_cookie.size(), 2u);
}

TEST_F(SteerProgramTest, AWeightChangeFlipsTheGeneration) {
    Listener v1 = listen_on("127.0.0.1", AF_INET), v2 = listen_on("127.0.0.1", AF_INET);
    install({two_subsets(v1, v2, 50, 50)});
    register_backend(v1);
    register_backend(v2);
    const uint32_t id = plan_.services[0].id;
    ts_service before{};
    ASSERT_EQ(bpf_map_lookup_elem(maps_.services.get(), &id, &before), 0);
    install({two_subsets(v1, v2, 100, 0)});
    ts_service after{};
    ASSERT_EQ(bpf_map_lookup_elem(maps_.services.get(), &id, &after), 0);
    EXPECT_EQ(after.generation, before.generation ^ 1);
    for (uint16_t port = 40000; port < 40100; ++port)
        ASSERT_EQ(run(ep("127.0.0.9:" + std::to_string(port)), ep("127.0.0.1:31400")).cookie, v1.cookie);
}

}  // namespace
}  // namespace tcpshift
