// Applies that must change nothing (a bad file, a dry run, a frontend where another process
// listens or on another service's backend, unless takeover), one that warns, and the
// documented limits, which install and serve.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "client.h"
#include "lifecycle_fixture.h"
#include "stats.h"

namespace tcpshift::testing {
namespace {

TEST_F(LifecycleTest, ABadApplyChangesNothing) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    apply(kConfig);
    const std::string dir = pins();
    const auto before = run_command({"/usr/sbin/bpftool", "map", "dump", "pinned", dir + "/services"}).out +
                        run_command({"/usr/sbin/bpftool", "map", "dump", "pinned", dir + "/frontends"}).out;
    const auto status_before = tcpshift_here({"status", "--json"}).out;

    std::string bad = kConfig;
    bad.replace(bad.find("weight: 50"), 10, "weight: -1");
    const auto r = tcpshift_here({"apply", "-f", write_temp_file("bad.yaml", bad)});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("bad.yaml:9: spec.subsets[0].weight: -1 is out of range"), std::string::npos) << r.err;
    const auto s = tcpshift_here({"set", "tcp-echo", "v3=10"});
    EXPECT_EQ(s.exit_code, 2);
    EXPECT_NE(s.err.find("has no subset \"v3\"; its subsets: v1, v2"), std::string::npos) << s.err;
    const auto twice = tcpshift_here({"set", "tcp-echo", "v1=5", "v1=6"});
    EXPECT_EQ(twice.exit_code, 2);
    EXPECT_NE(twice.err.find("subset \"v1\" is given twice (v1=6)"), std::string::npos) << twice.err;

    const auto after = run_command({"/usr/sbin/bpftool", "map", "dump", "pinned", dir + "/services"}).out +
                       run_command({"/usr/sbin/bpftool", "map", "dump", "pinned", dir + "/frontends"}).out;
    EXPECT_EQ(before, after);
    EXPECT_EQ(status_before, tcpshift_here({"status", "--json"}).out);
    auto in = enter();
    const Tally t = tally(endpoint("127.0.0.1:31400"), 200);
    EXPECT_EQ(t.failures, 0u);
    EXPECT_GT(t["one"], 0u);
    EXPECT_GT(t["two"], 0u);
}

TEST_F(LifecycleTest, AFrontendWhereAnotherProcessListensIsRefusedUnlessTakeover) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    Child squatter = start_echo(netns(), "127.0.0.1:31400", "squatter");
    const auto path = write_temp_file("cfg.yaml", kConfig);
    auto r = tcpshift_here({"apply", "-f", path});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("frontend 0.0.0.0:31400 is a port where tcpshift-echo (pid " +
                         std::to_string(squatter.pid()) + ") already listens on 127.0.0.1:31400"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("takeover: true"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(pins())) << "a refused apply attaches nothing";
    {
        auto in = enter();
        const Tally t = tally(endpoint("127.0.0.1:31400"), 20);
        EXPECT_EQ(t["squatter"], 20u) << "untouched: " << t.str();
    }

    std::string takeover = kConfig;
    takeover.replace(takeover.find("  subsets:"), 0, "  takeover: true\n");
    apply(takeover);
    auto in = enter();
    const Tally t = tally(endpoint("127.0.0.1:31400"), 1000);
    EXPECT_EQ(t.failures, 0u) << t.str();
    EXPECT_EQ(t["squatter"], 0u) << "steered only as configured: " << t.str();
    EXPECT_EQ(t["one"] + t["two"], 1000u) << t.str();
}

// A frontend on another service's backend port would take that backend's own clients: a
// `redis-cli -p PORT` got the other service's server. It is refused from the configuration
// alone, by explain too, and changes nothing, unless the frontend's service says takeover.
TEST_F(LifecycleTest, AFrontendOnAnotherServicesBackendIsRefusedUnlessTakeover) {
    Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
    Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
    Child cache = start_echo(netns(), "127.0.0.1:9003", "cache");
    const auto echo_path = write_temp_file("tcp-echo.yaml", kConfig);
    ASSERT_EQ(tcpshift_here({"apply", "-f", echo_path}).exit_code, 0);
    const std::string dir = pins();
    auto maps = [&] {
        std::string all;
        for (const char* map : {"frontends", "frontend_ports", "services", "listeners"})
            all += run_command({"/usr/sbin/bpftool", "map", "dump", "pinned", dir + "/" + map}).out;
        return all + tcpshift_here({"get", "--json"}).out;
    };
    const std::string before = maps();

    const std::string cache_config = R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: cache}
spec:
  listen: ["0.0.0.0:9001"]
  subsets: [{name: main, backends: ["127.0.0.1:9003"]}]
)";
    const auto path = write_temp_file("cache.yaml", cache_config);
    const std::string refusal = path + ":5: service \"cache\": frontend 0.0.0.0:9001 covers backend 127.0.0.1:9001 of "
                                       "service \"tcp-echo\" (";
    const auto r = tcpshift_here({"apply", "-f", path});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_TRUE(r.err.starts_with("tcpshift: " + refusal)) << r.err;
    EXPECT_NE(r.err.find("set spec.takeover: true to steer them anyway"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    const auto explain = tcpshift({"explain", "-f", echo_path, "-f", path});
    EXPECT_EQ(explain.exit_code, 2);
    EXPECT_TRUE(explain.err.starts_with("tcpshift: " + refusal + echo_path + ":10)")) << explain.err;
    EXPECT_EQ(before, maps());
    {
        auto in = enter();
        const Tally t = tally(endpoint("127.0.0.1:9001"), 20);
        EXPECT_EQ(t["one"], 20u) << "the backend's own clients still reach it: " << t.str();
    }

    std::string takeover = cache_config;
    takeover.replace(takeover.find("  subsets:"), 0, "  takeover: true\n");
    apply(takeover);
    auto in = enter();
    const Tally direct = tally(endpoint("127.0.0.1:9001"), 20);
    EXPECT_EQ(direct["cache"], 20u) << "taken over, as asked: " << direct.str();
    const Tally steered = tally(endpoint("127.0.0.1:31400"), 200);
    EXPECT_EQ(steered["one"] + steered["two"], 200u) << "tcp-echo still reaches its backends: " << steered.str();
}

TEST_F(LifecycleTest, ATakenOverFrontendNeverFallsThroughToTheSquatter) {
    Child squatter = start_echo(netns(), "127.0.0.1:31400", "squatter");
    std::string takeover = kConfig;
    takeover.replace(takeover.find("  subsets:"), 0, "  takeover: true\n");
    apply(takeover);  // no backend runs
    auto in = enter();
    const Tally t = tally(endpoint("127.0.0.1:31400"), 20);
    EXPECT_EQ(t["squatter"], 0u) << t.str();
    EXPECT_EQ(t.failures, 20u) << t.str();
}

TEST_F(LifecycleTest, DryRunChangesNothing) {
    const auto r = tcpshift_here({"apply", "--dry-run", "-f", write_temp_file("cfg.yaml", kConfig)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("dry run"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(pins()));
}

// A frontend on an address the namespace does not have is applied with a warning; one in
// the loopback range is local through lo's /8 and draws none.
TEST_F(LifecycleTest, AFrontendOnAnAddressTheNamespaceLacksIsAWarning) {
    std::string config = kConfig;
    config.replace(config.find("0.0.0.0:31400"), 13, "192.0.2.10:31400");
    auto r = tcpshift_here({"apply", "-f", write_temp_file("foreign.yaml", config)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("warning: service tcp-echo: frontend 192.0.2.10:31400: no interface of network namespace " +
                         std::to_string(netns_inode()) + " has 192.0.2.10"),
              std::string::npos)
        << r.err;
    config.replace(config.find("192.0.2.10:31400"), 16, "127.0.0.7:31400");
    r = tcpshift_here({"apply", "-f", write_temp_file("loopback.yaml", config)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
}

// The documented limits: 256 services, one of them (svc0) with 16 subsets of 16 backends.
constexpr int kServices = 256, kSubsets = 16, kPerSubset = 16;

// The port of backend b of svc0's subset k.
int limits_port(int k, int b) { return 30000 + k * kPerSubset + b; }

// svc0 on 127.0.0.1:20000, its subset sK weighted weights[K] over its 16 backends; every other
// service svcN on 127.0.0.1:(20000 + N), one subset over 127.0.0.1:(40000 + N).
std::string limits_config(const std::vector<double>& weights) {
    std::string text;
    for (int s = 0; s < kServices; ++s) {
        text += "---\napiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: svc" +
                std::to_string(s) + "}\nspec:\n  listen: [\"127.0.0.1:" + std::to_string(20000 + s) +
                "\"]\n  subsets:\n";
        const int subsets = s == 0 ? kSubsets : 1;
        for (int k = 0; k < subsets; ++k) {
            text += "  - name: s" + std::to_string(k) + "\n    weight: " +
                    std::to_string(s == 0 ? static_cast<int>(weights[k]) : 100) + "\n    backends: [";
            const int backends = s == 0 ? kPerSubset : 1;
            for (int b = 0; b < backends; ++b)
                text += std::string(b ? ", " : "") + "\"127.0.0.1:" +
                        std::to_string(s == 0 ? limits_port(k, b) : 40000 + s) + "\"";
            text += "]\n";
        }
    }
    return text;
}

// One process per subset of svc0, listening on its 16 backends and answering "sK"; asserts
// that each started.
void start_svc0_backends(const std::string& netns, std::vector<Child>* subsets) {
    for (int k = 0; k < kSubsets; ++k) {
        std::vector<std::string> more;
        for (int b = 1; b < kPerSubset; ++b) {
            more.push_back("--listen");
            more.push_back("127.0.0.1:" + std::to_string(limits_port(k, b)));
        }
        subsets->push_back(
            start_echo(netns, "127.0.0.1:" + std::to_string(limits_port(k, 0)), "s" + std::to_string(k), more));
        ASSERT_FALSE(subsets->back().first_line().empty()) << "subset s" << k << " did not start";
    }
}

// The backends of svc0 that `status --json` reports ready.
int ready_backends_of_svc0(const nlohmann::json& status) {
    int ready = 0;
    for (const auto& svc : status["services"])
        if (svc["service"] == "svc0")
            for (const auto& subset : svc["subsets"])
                for (const auto& b : subset["backends"]) ready += b["ready"].get<bool>();
    return ready;
}

// 256 services, one of them with 16 subsets of 16 backends: the documented limits install,
// all 256 backends of the big service register, and it splits by its 16 unequal weights.
TEST_F(LifecycleTest, TheDocumentedLimitsInstallAndServe) {
    // Weights 1 to 16: unequal, and none but the last a multiple of the subset's 16 backends,
    // so each backend's share of its subset is a fraction.
    std::vector<double> weights;
    for (int k = 0; k < kSubsets; ++k) weights.push_back(k + 1);
    std::vector<Child> subsets;
    ASSERT_NO_FATAL_FAILURE(start_svc0_backends(netns(), &subsets));
    Child last = start_echo(netns(), "127.0.0.1:40255", "last");
    apply(limits_config(weights));
    const auto status = tcpshift_here({"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    const auto j = nlohmann::json::parse(status.out);
    ASSERT_EQ(j["services"].size(), static_cast<size_t>(kServices));
    EXPECT_EQ(ready_backends_of_svc0(j), kSubsets * kPerSubset) << "every backend of svc0 listens";

    // Enough connections to see a one-point deviation of the smallest share (1/136).
    const size_t n = sample_size_for(weights, 0.01);
    ASSERT_LE(n, 3000u) << "keep the test short";
    auto in = enter();
    const Tally t0 = tally_from_many_sources(endpoint("127.0.0.1:20000"), n);
    EXPECT_EQ(t0.failures, 0u) << t0.str();
    std::vector<uint64_t> observed;
    uint64_t counted = 0;
    for (int k = 0; k < kSubsets; ++k) {
        observed.push_back(t0["s" + std::to_string(k)]);
        counted += observed.back();
    }
    EXPECT_EQ(counted, n) << "replies from outside svc0: " << t0.str();
    const SplitVerdict v = chi_square_split(observed, weights);
    EXPECT_GE(v.p_value, kAlpha) << "svc0's split: " << t0.str() << "\n" << v.table;
    const Tally t255 = tally(endpoint("127.0.0.1:20255"), 50);
    EXPECT_EQ(t255["last"], 50u) << t255.str();
}

}  // namespace
}  // namespace tcpshift::testing
