// Istio files, applied as users write them, route real connections. The files are the ones
// in examples/istio, so the examples are tested too.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dataplane/pins.h"
#include "tcp_echo_fixture.h"

namespace tcpshift::testing {
namespace {

class IstioTest : public TcpEchoTest {};

TEST_F(IstioTest, TheTasksSingleFileAppliesRouteFiftyFiftyThenTwentyEighty) {
    start_workloads();
    apply_file(example("istio/steps/01-workloads.yaml"));
    apply_file(example("istio/steps/02-gateway.yaml"));
    apply_file(example("istio/steps/03-virtualservice-all.yaml"));
    expect_split("127.0.0.1:31400", 50, 50);
    apply_file(example("istio/steps/04-destinationrule.yaml"));
    expect_split("127.0.0.1:31400", 50, 50);
    apply_file(example("istio/steps/05-virtualservice-20-80.yaml"));
    expect_split("127.0.0.1:31400", 20, 80);

    const auto get = tcpshift_here({"get", "--json"});
    ASSERT_EQ(get.exit_code, 0) << get.err;
    EXPECT_EQ(nlohmann::json::parse(get.out)["resources"].size(), 6u);
    const auto verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST_F(IstioTest, TheFilesInOneApplyRouteTheSameAndSetShiftsThem) {
    start_workloads();
    apply_file(example("istio/tcp-echo.yaml"));
    expect_split("127.0.0.1:31400", 20, 80);

    const auto status = tcpshift_here({"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    EXPECT_EQ(nlohmann::json::parse(status.out)["services"][0]["set"], "tcpshift set tcp-echo v1=20 v2=80");
    const auto set = tcpshift_here({"set", "tcp-echo", "v1=50", "v2=50"});
    ASSERT_EQ(set.exit_code, 0) << set.err;
    expect_split("127.0.0.1:31400", 50, 50);
    // The stored VirtualService carries the new weights, so `verify -f` against the old file
    // now reports a difference.
    const auto verify = tcpshift_here({"verify", "-f", example("istio/tcp-echo.yaml")});
    EXPECT_EQ(verify.exit_code, 1) << verify.out;
    EXPECT_NE(verify.out.find("slots differ from the configured weights"), std::string::npos) << verify.out;
}

// Istio's task in the shape of its sample files, given to one apply in the order the task
// applies them: tcp-echo-all-v1.yaml, then tcp-echo-20-v2.yaml. Both define the
// VirtualService tcp-echo; the later -f wins, as with kubectl apply, and a note says so.
TEST_F(IstioTest, TheLaterOfTwoFilesInOneApplyWinsAsWithKubectl) {
    start_workloads();
    const std::string vs_head = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
  - match: [{port: 31400}]
    route:
)";
    const std::string gateway_and_rule = R"(apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp-echo-gateway}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 31400, name: tcp, protocol: TCP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo-destination}
spec:
  host: tcp-echo
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
)";
    const auto workloads = example("istio/steps/01-workloads.yaml");
    const std::string to = "    - {destination: {host: tcp-echo, port: {number: 9000}, subset: ";
    const auto all_v1 = write_temp_file("tcp-echo-all-v1.yaml", gateway_and_rule + vs_head + to + "v1}}\n");
    const auto v2_20 =
        write_temp_file("tcp-echo-20-v2.yaml", vs_head + to + "v1}, weight: 80}\n" + to + "v2}, weight: 20}\n");
    const auto r = tcpshift_here({"apply", "-f", workloads, "-f", all_v1, "-f", v2_20});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string note = "note: " + v2_20 +
                             ":1: VirtualService \"tcp-echo\" in namespace default replaces the one at " + all_v1 +
                             ":15 (a later -f wins, as with kubectl apply)\n";
    EXPECT_NE(r.err.find(note), std::string::npos) << r.err;
    expect_split("127.0.0.1:31400", 80, 20);
    const auto get = tcpshift_here({"get", "--json"});
    ASSERT_EQ(get.exit_code, 0) << get.err;
    EXPECT_EQ(nlohmann::json::parse(get.out)["resources"].size(), 6u);

    const auto explain = tcpshift({"explain", "-f", workloads, "-f", all_v1, "-f", v2_20, "--json"});
    ASSERT_EQ(explain.exit_code, 0) << explain.err;
    EXPECT_DOUBLE_EQ(nlohmann::json::parse(explain.out)["services"][0]["subsets"][0]["percent"].get<double>(), 80.0);

    // The other order leaves the task's first step: everything to v1.
    const auto reversed = tcpshift_here({"apply", "-f", workloads, "-f", v2_20, "-f", all_v1});
    ASSERT_EQ(reversed.exit_code, 0) << reversed.err;
    auto in = enter();
    const Tally t = tally(endpoint("127.0.0.1:31400"), 200);
    EXPECT_EQ(t["one"], 200u) << t.str();
}

TEST_F(IstioTest, TheMeshFormServesAClientOfTheVirtualIp) {
    start_workloads();
    apply_file(example("istio/mesh.yaml"));
    const auto routes = run_command({"/sbin/ip", "-n", netns(), "route", "show", "table", "local", "proto", "250"});
    EXPECT_NE(routes.out.find("local 10.96.0.50 dev lo"), std::string::npos) << routes.out;
    expect_split("10.96.0.50:9000", 30, 70);

    const auto del = tcpshift_here({"delete", "-f", example("istio/mesh.yaml")});
    ASSERT_EQ(del.exit_code, 0) << del.err;
    const auto after = run_command({"/sbin/ip", "-n", netns(), "route", "show", "table", "local", "proto", "250"});
    EXPECT_EQ(after.out, "") << "the local route goes with the route that needed it";
}

// A failure after the maps were written, the old route removed and the serial moved, just
// before the applied set is stored, rolls everything back: the maps, the local routes, the
// serial and the applied set; the old virtual IP keeps serving its split.
TEST_F(IstioTest, AFailureAfterTheMapWritesRollsBackMapsRoutesAndState) {
    start_workloads();
    apply_file(example("istio/mesh.yaml"));
    auto dump = [&] {
        uint64_t inode = 0;
        {
            auto in = ScopedNetns::enter(netns());
            inode = current_netns()->inode;
        }
        std::string all;
        // Tables are replaced on the way back; verify compares their content.
        for (const char* map : {"frontends", "listeners", "frontend_ports", "backend_tags"})
            all += run_command({"/usr/sbin/bpftool", "map", "dump", "pinned", pin_dir(inode) + "/" + map}).out;
        return all;
    };
    const auto routes = [&] {
        return run_command({"/sbin/ip", "-n", netns(), "route", "show", "table", "local", "proto", "250"}).out;
    };
    const std::string maps_before = dump(), routes_before = routes();
    const std::string get_before = tcpshift_here({"get", "--json"}).out;
    ASSERT_NE(routes_before.find("local 10.96.0.50 dev lo"), std::string::npos) << routes_before;

    std::ifstream in(example("istio/mesh.yaml"));
    std::string moved((std::istreambuf_iterator<char>(in)), {});
    moved.replace(moved.find("addresses: [10.96.0.50]"), 23, "addresses: [10.96.0.51]");
    moved.replace(moved.find("weight: 30"), 10, "weight: 90");
    moved.replace(moved.find("weight: 70"), 10, "weight: 10");
    ::setenv("TCPSHIFT_FAILPOINT", "commit-before-save", 1);  // the child inherits it
    const auto r = tcpshift_here({"apply", "-f", write_temp_file("moved.yaml", moved)});
    ::unsetenv("TCPSHIFT_FAILPOINT");
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("failpoint commit-before-save"), std::string::npos) << r.err;

    EXPECT_TRUE(dump() == maps_before) << "the maps do not hold the old plan again";
    EXPECT_EQ(routes(), routes_before) << "the old virtual IP's route is back, the new one gone";
    EXPECT_EQ(tcpshift_here({"get", "--json"}).out, get_before);
    EXPECT_EQ(tcpshift_here({"verify"}).exit_code, 0);
    expect_split("10.96.0.50:9000", 30, 70);
}

TEST_F(IstioTest, DetachRemovesTheLocalRoutes) {
    start_workloads();
    apply_file(example("istio/mesh.yaml"));
    ASSERT_EQ(tcpshift_here({"detach"}).exit_code, 0);
    const auto after = run_command({"/sbin/ip", "-n", netns(), "route", "show", "table", "local", "proto", "250"});
    EXPECT_EQ(after.out, "");
}

TEST_F(IstioTest, AnInconsistentApplyIsRefusedAndTheOldRoutingKeepsServing) {
    start_workloads();
    apply_file(example("istio/tcp-echo.yaml"));
    const auto before = tcpshift_here({"get", "--json"}).out;
    // A VirtualService that names a subset the DestinationRule does not define.
    const std::string bad = R"(apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
  - match: [{port: 31400}]
    route:
    - destination: {host: tcp-echo, port: {number: 9000}, subset: v3}
)";
    const auto r = tcpshift_here({"apply", "-f", write_temp_file("bad-vs.yaml", bad)});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("bad-vs.yaml:10: spec.tcp[0].route[0].destination.subset: \"v3\" is not a subset"),
              std::string::npos)
        << r.err;
    // Deleting the DestinationRule would strand the VirtualService's subsets: refused too.
    const auto d = tcpshift_here({"delete", "destinationrule", "tcp-echo-destination"});
    EXPECT_EQ(d.exit_code, 2);
    EXPECT_NE(d.err.find("would no longer resolve, so nothing was deleted"), std::string::npos) << d.err;
    EXPECT_EQ(before, tcpshift_here({"get", "--json"}).out);
    expect_split("127.0.0.1:31400", 20, 80);
}

}  // namespace
}  // namespace tcpshift::testing
