// tcpshift-lookup-bench: the sk_lookup program's cost per run, timed by the kernel with
// BPF_PROG_TEST_RUN, free of network noise: a connection to a port no frontend uses (what
// every other connection in the namespace pays), a steered one, and one whose chosen backend
// has no listener (the fallback walk); and a steered one as the configuration grows to
// 10,000 services or 256 backends. Root only. bench/run.sh runs it with --benchmark_format=json.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>
#include <memory>

#include <linux/bpf.h>

#include "bpf/abi.h"
#include "dataplane/dataplane.h"
#include "dataplane/lookup_run.h"
#include "base/netns.h"
#include "compile/plan.h"

namespace tcpshift {
namespace {

constexpr uint32_t kRepeat = 2000;  // runs the kernel times per iteration

struct Backend {
    Fd fd;
    Endpoint local;
};

Backend listen_loopback() {
    Backend b;
    b.fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{.sin_family = AF_INET, .sin_port = 0, .sin_addr = {htonl(INADDR_LOOPBACK)}};
    socklen_t len = sizeof(sa);
    if (::bind(b.fd.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0 || ::listen(b.fd.get(), 16) != 0 ||
        ::getsockname(b.fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
        std::cerr << "lookup-bench: cannot listen on 127.0.0.1\n";
        std::exit(1);
    }
    b.local = *parse_endpoint("127.0.0.1:" + std::to_string(ntohs(sa.sin_port)));
    return b;
}

// A loaded program with `services` services on ports 20001.., each over `backends` backends
// in one subset each; `live` of the backends have a listener.
struct Setup {
    std::unique_ptr<SteerProgram> program;
    DataplaneMaps maps;
    std::vector<Backend> backends;

    Setup(uint32_t services, uint32_t backends_per_service, uint32_t live) {
        auto here = current_netns();
        if (!here) fail_with(here.error().message);
        auto loaded = SteerProgram::load(0x5eed, here->cookie, std::max<uint32_t>(services, TS_MAX_SERVICES));
        if (!loaded) fail_with(loaded.error().message);
        program = std::make_unique<SteerProgram>(std::move(*loaded));
        auto m = program->maps();
        if (!m) fail_with(m.error().message);
        maps = std::move(*m);
        for (uint32_t i = 0; i < backends_per_service; ++i) backends.push_back(listen_loopback());
        std::vector<ServiceSpec> specs;
        for (uint32_t s = 0; s < services; ++s) {
            ServiceSpec spec{.name = "s" + std::to_string(s),
                             .listen = {*parse_endpoint("127.0.0.1:" + std::to_string(20001 + s))}};
            for (uint32_t i = 0; i < backends_per_service; ++i)
                spec.subsets.push_back({.name = "b" + std::to_string(i), .weight = 1, .backends = {backends[i].local}});
            specs.push_back(std::move(spec));
        }
        PlanLimits limits = default_limits();
        limits.max_services = std::max<uint32_t>(services, TS_MAX_SERVICES);
        limits.max_frontends = std::max<uint32_t>(TS_MAX_FRONTENDS, 4 * services);
        limits.max_routes = std::max<uint32_t>(TS_MAX_ROUTES, 4 * services);
        auto plan = compile_plan(specs, {}, limits);
        if (!plan) fail_with(plan.error().message);
        auto netns = current_netns();
        if (!netns) fail_with(netns.error().message);
        if (auto ok = install_listener_keys(maps, *plan, nullptr, *netns); !ok) fail_with(ok.error().message);
        if (auto ok = install_plan(maps, *plan, nullptr, *netns); !ok) fail_with(ok.error().message);
        for (uint32_t i = 0; i < live; ++i) {
            const uint32_t id = plan->ids.backends.at(backends[i].local.str());
            if (auto ok = register_listener(maps, serving(id, backends[i].local), backends[i].fd.get()); !ok) fail_with(ok.error().message);
        }
    }

    [[noreturn]] static void fail_with(const std::string& why) {
        std::cerr << "lookup-bench: " << why << "\n";
        std::exit(1);
    }
};

// Times lookups to `frontend_port`, from a new client port each iteration.
void time_lookups(benchmark::State& state, const Setup& setup, uint16_t frontend_port, int want_verdict) {
    const Endpoint frontend = *parse_endpoint("127.0.0.1:" + std::to_string(frontend_port));
    uint16_t client_port = 1024;
    for (auto _ : state) {
        const Endpoint client = *parse_endpoint("10.1.2.3:" + std::to_string(client_port++ | 1024));
        auto r = run_lookup(setup.program->steer_fd(), client, frontend, IPPROTO_TCP, kRepeat);
        if (!r || r->verdict != want_verdict) {
            state.SkipWithError(r ? "unexpected verdict" : r.error().message.c_str());
            break;
        }
        state.SetIterationTime(r->duration_ns * 1e-9);
    }
}

void BM_OtherPort(benchmark::State& state) {
    Setup setup(1, 2, 2);
    time_lookups(state, setup, 9999, SK_PASS);
}

void BM_Steered(benchmark::State& state) {
    Setup setup(1, 2, 2);
    time_lookups(state, setup, 20001, SK_PASS);
}

void BM_Fallback(benchmark::State& state) {
    // Two backends, one listening: half the lookups choose the dead one and walk on.
    Setup setup(1, 2, 1);
    time_lookups(state, setup, 20001, SK_PASS);
}

void BM_SteeredServices(benchmark::State& state) {
    const auto n = static_cast<uint32_t>(state.range(0));
    Setup setup(n, 2, 2);
    time_lookups(state, setup, static_cast<uint16_t>(20000 + n), SK_PASS);
}

void BM_SteeredBackends(benchmark::State& state) {
    const auto n = static_cast<uint32_t>(state.range(0));
    Setup setup(1, n, n);
    time_lookups(state, setup, 20001, SK_PASS);
}

BENCHMARK(BM_OtherPort)->UseManualTime()->Iterations(300)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_Steered)->UseManualTime()->Iterations(300)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_Fallback)->UseManualTime()->Iterations(300)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_SteeredServices)->Arg(1)->Arg(100)->Arg(1000)->Arg(10000)->UseManualTime()->Iterations(300)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_SteeredBackends)->Arg(2)->Arg(16)->Arg(64)->Arg(256)->UseManualTime()->Iterations(300)->Unit(benchmark::kNanosecond);

}  // namespace
}  // namespace tcpshift

BENCHMARK_MAIN();
