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
#include <memory>
#include <numeric>
#include <set>

#include "netns_fixture.h"
#include "stats.h"
#include "test_names.h"
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

// What each flow of a row must get.
enum class Expect {
    kPredicted,  // the listener of the backend the table predicts
    kFirst,      // the first backend's listener, whatever the table says
    kSecond,     // the second backend's listener
    kDropped,    // refused: SK_DROP, no socket
    kUntouched,  // not a frontend's: SK_PASS, no socket
};

// One service of two backends, "v1" and "v2", both listening on `backends`, and flows from
// `client`, one per source port, to `connect_to`.
struct FlowCase {
    const char* desc;
    const char* backends = "127.0.0.1";
    std::array<uint32_t, 2> weights = {50, 50};
    const char* listen = "0.0.0.0:31400";        // the service's frontend
    std::array<bool, 2> registered = {true, true};
    bool second_closes = false;                  // v2 registers, then closes before the flows
    const char* client = "127.0.0.9";
    uint16_t first_port = 40000, flows = 1;
    const char* connect_to = "127.0.0.1:31400";
    int protocol = IPPROTO_TCP;
    Expect expect = Expect::kPredicted;
    bool both_chosen = false;                    // each backend takes some flow
    bool some_fall_back = false;                 // the table chose v2 for some flow
    int64_t lookups = -1, no_backend = -1;       // the service's counters after; -1: not checked
};

void PrintTo(const FlowCase& c, std::ostream* os) { *os << c.desc; }

class SteerFlowTest : public SteerProgramTest, public ::testing::WithParamInterface<FlowCase> {
   protected:
    // The verdict and socket a flow must get.
    static RunResult expected(Expect expect, const Listener (&v)[2], uint64_t predicted_cookie) {
        switch (expect) {
            case Expect::kPredicted: return {.verdict = SK_PASS, .cookie = predicted_cookie};
            case Expect::kFirst: return {.verdict = SK_PASS, .cookie = v[0].cookie};
            case Expect::kSecond: return {.verdict = SK_PASS, .cookie = v[1].cookie};
            case Expect::kDropped: return {.verdict = SK_DROP, .cookie = 0};
            case Expect::kUntouched: return {.verdict = SK_PASS, .cookie = 0};
        }
        return {};
    }
};

TEST_P(SteerFlowTest, EveryFlowGetsWhatTheRowExpects) {
    const FlowCase& c = GetParam();
    const int family = std::strchr(c.backends, ':') ? AF_INET6 : AF_INET;
    Listener v[2] = {listen_on(c.backends, family), listen_on(c.backends, family)};
    install({two_subsets(v[0], v[1], c.weights[0], c.weights[1], {ep(c.listen)})});
    for (int i = 0; i < 2; ++i)
        if (c.registered[i]) register_backend(v[i]);
    if (c.second_closes) v[1].fd.reset();
    const uint32_t ids[2] = {plan_.ids.backends.at(v[0].local.str()), plan_.ids.backends.at(v[1].local.str())};
    const std::map<uint32_t, uint64_t> cookie_of = {{ids[0], v[0].cookie}, {ids[1], v[1].cookie}};
    const Endpoint frontend = ep(c.connect_to);
    std::set<uint64_t> seen;
    int chose_second = 0;
    for (uint32_t port = c.first_port; port < uint32_t{c.first_port} + c.flows; ++port) {
        const Endpoint client = *parse_address(c.client, static_cast<uint16_t>(port));
        const uint32_t predicted = predicted_backend(client, frontend, "tcp-echo");
        const RunResult want = expected(c.expect, v, cookie_of.at(predicted));
        const RunResult r = run(client, frontend, c.protocol);
        ASSERT_EQ(r.verdict, want.verdict) << "port " << port;
        ASSERT_EQ(r.cookie, want.cookie) << "port " << port;
        seen.insert(r.cookie);
        chose_second += predicted == ids[1];
    }
    if (c.both_chosen) {
        EXPECT_EQ(seen.size(), 2u) << "both backends take connections";
    }
    if (c.some_fall_back) {
        EXPECT_GT(chose_second, 0);
    }
    // sk_lookup runs for every packet that finds no socket (SYN, retransmissions, a SYN
    // cookie's ACK), so it counts only refusals; sock_ops counts established connections.
    auto counters = read_service_counters(maps_, plan_.services[0].id);
    ASSERT_TRUE(counters);
    if (c.lookups >= 0) {
        EXPECT_EQ(counters->lookups, static_cast<uint64_t>(c.lookups));
    }
    if (c.no_backend >= 0) {
        EXPECT_EQ(counters->no_backend, static_cast<uint64_t>(c.no_backend));
    }
}

INSTANTIATE_TEST_SUITE_P(
    Table, SteerFlowTest,
    ::testing::Values(
        FlowCase{.desc = "IPv4: the backend the table predicts",
                 .weights = {20, 80}, .flows = 400, .both_chosen = true, .lookups = 0},
        FlowCase{.desc = "IPv6: an IPv6 listener, the one the table predicts",
                 .backends = "::1", .weights = {30, 70}, .listen = "[::]:31400", .client = "::1",
                 .first_port = 50000, .flows = 100, .connect_to = "[::1]:31400"},
        FlowCase{.desc = "no backend listens: dropped and counted",
                 .registered = {false, false}, .expect = Expect::kDropped, .no_backend = 1},
        FlowCase{.desc = "the chosen backend has no listener: a live one takes the flow",
                 .registered = {true, false}, .flows = 200, .expect = Expect::kFirst, .some_fall_back = true},
        FlowCase{.desc = "weight 0 is never chosen",
                 .weights = {0, 100}, .flows = 200, .expect = Expect::kSecond},
        FlowCase{.desc = "weight 0 is no fallback: refused when the other backend is gone",
                 .weights = {0, 100}, .second_closes = true, .expect = Expect::kDropped},
        FlowCase{.desc = "another port passes untouched",
                 .listen = "127.0.0.1:31400", .connect_to = "127.0.0.1:31401", .expect = Expect::kUntouched},
        FlowCase{.desc = "another address passes untouched",
                 .listen = "127.0.0.1:31400", .connect_to = "127.0.0.2:31400", .expect = Expect::kUntouched},
        FlowCase{.desc = "UDP passes untouched",
                 .listen = "127.0.0.1:31400", .protocol = IPPROTO_UDP, .expect = Expect::kUntouched}),
    [](const auto& info) { return test_case_name(info.param.desc); });

// A dead backend's share goes to the live ones by weight, not to its neighbour in the list:
// a 2% canary beside a 48% stable backend takes 2/50 of what a dead 50% backend leaves.
struct DeadShareCase {
    const char* desc;
    std::vector<uint32_t> weights;  // the biggest dies
};

void PrintTo(const DeadShareCase& c, std::ostream* os) { *os << c.desc; }

class DeadShareTest : public SteerProgramTest, public ::testing::WithParamInterface<DeadShareCase> {};

TEST_P(DeadShareTest, GoesToTheLiveBackendsByWeight) {
    const DeadShareCase& c = GetParam();
    std::vector<Listener> listeners;
    ServiceSpec spec{.name = "canary", .listen = {ep("0.0.0.0:31400")}};
    for (size_t i = 0; i < c.weights.size(); ++i) {
        listeners.push_back(listen_on("127.0.0.1", AF_INET));
        spec.subsets.push_back(
            {.name = "s" + std::to_string(i), .weight = c.weights[i], .backends = {listeners[i].local}});
    }
    install({spec});
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
        const Endpoint client = ep("10.0." + std::to_string(n / 250) + "." + std::to_string(n % 250 + 1) + ":" +
                                   std::to_string(20000 + n % 7919));
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

INSTANTIATE_TEST_SUITE_P(
    Table, DeadShareTest,
    ::testing::Values(DeadShareCase{.desc = "canary 2, stable 48, dead 50", .weights = {2, 48, 50}},
                      DeadShareCase{.desc = "canary 2, stable 48, dead 50, listed first", .weights = {50, 2, 48}},
                      DeadShareCase{.desc = "10, 30, dead 60", .weights = {10, 30, 60}}),
    [](const auto& info) { return test_case_name(info.param.desc); });

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

// A weight change replaces the service's IPv4 table in place: the same one key, now with the
// new slots; an IPv4-only service has no IPv6 table.
TEST_F(SteerProgramTest, AWeightChangeReplacesTheTableInPlace) {
    Listener v1 = listen_on("127.0.0.1", AF_INET), v2 = listen_on("127.0.0.1", AF_INET);
    install({two_subsets(v1, v2, 50, 50)});
    register_backend(v1);
    register_backend(v2);
    const uint32_t id = plan_.services[0].id;
    const auto keys = [&] {
        std::vector<uint32_t> held;
        uint32_t key = 0;
        for (const uint32_t* prev = nullptr; held.size() < 100 && bpf_map_get_next_key(maps_.tables.get(), prev, &key) == 0;
             prev = &key)
            held.push_back(key);
        return held;
    };
    const std::vector<uint32_t> only_ipv4{TS_TABLE_ID(id, 0)};
    ASSERT_EQ(keys(), only_ipv4);
    install({two_subsets(v1, v2, 100, 0)});
    ASSERT_EQ(keys(), only_ipv4);
    auto table = std::make_unique<ts_table>();
    ASSERT_EQ(bpf_map_lookup_elem(maps_.tables.get(), &only_ipv4[0], table.get()), 0);
    EXPECT_EQ(table->backend_count, 1u);
    EXPECT_EQ(std::count(table->slots, table->slots + table->slot_count, 0), table->slot_count);
    for (uint16_t port = 40000; port < 40100; ++port)
        ASSERT_EQ(run(ep("127.0.0.9:" + std::to_string(port)), ep("127.0.0.1:31400")).cookie, v1.cookie);
}

}  // namespace
}  // namespace tcpshift
