// Resource keys and the edits `set` makes in place of the user.
#include "config/resource_key.h"

#include <gtest/gtest.h>

#include "config/edit.h"

namespace tcpshift {
namespace {

TEST(ResourceKey, PrintsAndParsesBack) {
    const ResourceKey vs{.kind = "VirtualService", .group = "networking.istio.io", .ns = "shift", .name = "tcp-echo"};
    EXPECT_EQ(vs.str(), "VirtualService.networking.istio.io/shift/tcp-echo");
    EXPECT_EQ(ResourceKey::parse(vs.str()), vs);
    const ResourceKey svc{.kind = "Service", .group = "", .ns = "default", .name = "tcp-echo"};
    EXPECT_EQ(svc.str(), "Service/default/tcp-echo");
    EXPECT_EQ(ResourceKey::parse(svc.str()), svc);
    for (const char* text : {"", "Service", "Service/default", "Service//x", "/default/x", "a/b/c/d", "Service/ns/"})
        EXPECT_FALSE(ResourceKey::parse(text)) << text;
}

TEST(ResourceKey, KeysDifferByEveryPart) {
    const ResourceKey a{.kind = "Gateway", .group = "networking.istio.io", .ns = "default", .name = "g"};
    ResourceKey b = a;
    b.group = "gateway.networking.k8s.io";
    EXPECT_NE(a, b) << "Istio's Gateway and the Gateway API's are two kinds";
    b = a;
    b.ns = "prod";
    EXPECT_NE(a, b);
    b = a;
    b.name = "h";
    EXPECT_NE(a, b);
}

TEST(ResourceKey, AKindMatchesInAnyCasePluralOrWithItsGroup) {
    const ResourceKey vs{.kind = "VirtualService", .group = "networking.istio.io", .ns = "d", .name = "n"};
    for (const char* wanted : {"virtualservice", "VirtualServices", "virtualservice.networking.istio.io",
                               "virtualservices.networking.istio.io"})
        EXPECT_TRUE(vs.matches_kind(wanted)) << wanted;
    for (const char* wanted : {"virtual", "service", "virtualservice.gateway.networking.k8s.io", "gateway", ""})
        EXPECT_FALSE(vs.matches_kind(wanted)) << wanted;
    const ResourceKey gw{.kind = "Gateway", .group = "gateway.networking.k8s.io", .ns = "d", .name = "n"};
    EXPECT_TRUE(gw.matches_kind("gateway"));
    EXPECT_TRUE(gw.matches_kind("gateway.gateway.networking.k8s.io"));
    EXPECT_FALSE(gw.matches_kind("gateway.networking.istio.io"));
}

TEST(WeightEdit, ParsesAssignmentsAndRefusesWhatIsNotOne) {
    auto ok = parse_weight_assignment("v1=20");
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->first, "v1");
    EXPECT_EQ(ok->second, 20u);
    for (const char* bad : {"v1", "=20", "v1=abc", "v1=-1", "v1=1000001", "v1=2.5", "v1="}) {
        auto refused = parse_weight_assignment(bad);
        ASSERT_FALSE(refused) << bad;
        EXPECT_EQ(refused.error().kind, ErrorKind::kConfig) << bad;
    }
}

TEST(WeightEdit, RewritesTheWeightAtItsPathAndNothingElse) {
    auto parsed = parse_resources(R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: tcp-echo}
spec:
  listen: ["0.0.0.0:31400"]
  subsets:
  - {name: v1, weight: 50, backends: ["127.0.0.1:9001"]}
  - {name: v2, weight: 50, backends: ["127.0.0.1:9002"]}
)",
                                  "t.yaml", "default", nullptr);
    ASSERT_TRUE(parsed) << parsed.error().message;
    Resource& r = parsed->front();
    ASSERT_TRUE(set_weight(r, {"spec", "subsets", "1", "weight"}, 80));
    EXPECT_EQ(r.node["spec"]["subsets"][1]["weight"].as<int>(), 80);
    EXPECT_EQ(r.node["spec"]["subsets"][0]["weight"].as<int>(), 50);
    for (const std::vector<std::string>& path : std::vector<std::vector<std::string>>{
             {}, {"spec", "subsets", "7", "weight"}, {"spec", "subsets", "x", "weight"}, {"spec", "nope", "weight"}}) {
        auto refused = set_weight(r, path, 1);
        EXPECT_FALSE(refused) << path.size();
    }
    EXPECT_EQ(r.node["spec"]["subsets"][0]["weight"].as<int>(), 50) << "a refused edit changed nothing";
}

}  // namespace
}  // namespace tcpshift
