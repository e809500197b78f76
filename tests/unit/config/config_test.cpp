// The native TrafficShift read into services: every field, every refusal with file:line
// and the field, and the checks that span a set of services.
#include <gtest/gtest.h>

#include "config/config.h"
#include "config/resolve.h"
#include "config/yaml_fields.h"
#include "native_documents.h"
#include "test_names.h"

namespace tcpshift {
namespace {

constexpr const char* kValid = testing::kNativeShift;

Result<std::vector<ServiceSpec>> parse(const std::string& text, Diagnostics* diag = nullptr) {
    return testing::parse_services(text, diag);
}

TEST(Config, ParsesTheNativeResource) {
    auto services = parse(kValid);
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(services->size(), 1u);
    const ServiceSpec& s = (*services)[0];
    EXPECT_EQ(s.name, "tcp-echo");
    EXPECT_EQ(s.origin.str(), "TrafficShift.tcpshift.io/default/tcp-echo");
    ASSERT_EQ(s.listen.size(), 2u);
    EXPECT_EQ(s.listen[1].str(), "[::]:31400");
    EXPECT_EQ(s.affinity, Affinity::kSourceIp);
    EXPECT_FALSE(s.takeover);
    ASSERT_EQ(s.subsets.size(), 2u);
    EXPECT_EQ(s.subsets[0].weight, 20u);
    EXPECT_EQ(s.subsets[0].weight_where.str(), "t.yaml:10");
    EXPECT_EQ(s.subsets[1].backends.size(), 3u);
}

TEST(Config, ReadsSeveralDocumentsAndSkipsKindsItDoesNotHandle) {
    const std::string text = std::string(kValid) + R"(---
apiVersion: v1
kind: ConfigMap
metadata: {name: x}
---
apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: other, namespace: prod}
spec:
  listen: ["127.0.0.1:31401"]
  subsets: [{name: a, weight: 1, backends: ["127.0.0.1:9101"]}]
)";
    Diagnostics diag;
    auto services = parse(text, &diag);
    const auto& notes = diag.notes;
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(services->size(), 2u);
    EXPECT_EQ((*services)[1].origin.str(), "TrafficShift.tcpshift.io/prod/other");
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("t.yaml:16: skipped ConfigMap \"x\""), std::string::npos) << notes[0];
}

TEST(Config, ALoneSubsetTakesAllWithoutAWeight) {
    auto services = parse(R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: solo}
spec:
  listen: ["127.0.0.1:80"]
  subsets: [{name: only, backends: ["127.0.0.1:8080"]}]
)");
    ASSERT_TRUE(services) << services.error().message;
    EXPECT_GT((*services)[0].subsets[0].weight, 0u);
}

struct ErrorCase {
    const char* desc;
    std::string from;  // replaced in kValid ...
    std::string to;    // ... by this
    std::string want;  // fragment of the one-line error, with file:line
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.desc; }

class ConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrorTest, IsRefusedWithFileLineAndField) {
    const ErrorCase& c = GetParam();
    std::string text = kValid;
    const auto pos = text.find(c.from);
    ASSERT_NE(pos, std::string::npos) << c.desc;
    text.replace(pos, c.from.size(), c.to);
    auto services = parse(text);
    ASSERT_FALSE(services) << c.desc << " was accepted";
    EXPECT_EQ(services.error().kind, ErrorKind::kConfig);
    EXPECT_NE(services.error().message.find(c.want), std::string::npos)
        << c.desc << "\n got: " << services.error().message << "\nwant: " << c.want;
    EXPECT_EQ(services.error().message.find('\n'), std::string::npos) << "errors are one line";
}

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigErrorTest,
    ::testing::Values(
        ErrorCase{.desc = "bad address", .from = "127.0.0.1:9001", .to = "127.0.0.300:9001",
                  .want = "t.yaml:11: spec.subsets[0].backends[0]: \"127.0.0.300:9001\""},
        ErrorCase{.desc = "port 0", .from = "0.0.0.0:31400", .to = "0.0.0.0:0",
                  .want = "t.yaml:6: spec.listen[0]: \"0.0.0.0:0\": port 0 is out of range 1-65535"},
        ErrorCase{.desc = "port 65536", .from = "127.0.0.1:9002", .to = "127.0.0.1:65536",
                  .want = "t.yaml:14: spec.subsets[1].backends[0]: \"127.0.0.1:65536\": port 65536 is out of range"},
        ErrorCase{.desc = "duplicate subset", .from = "name: v2", .to = "name: v1",
                  .want = "t.yaml:12: subset \"v1\" of service \"tcp-echo\" is defined twice"},
        ErrorCase{.desc = "duplicate backend", .from = "\"127.0.0.1:9003\"", .to = "\"127.0.0.1:9001\"",
                  .want = "backend 127.0.0.1:9001 appears twice in service \"tcp-echo\""},
        ErrorCase{.desc = "duplicate frontend", .from = "\"[::]:31400\"", .to = "\"0.0.0.0:31400\"",
                  .want = "0.0.0.0:31400 is claimed by service \"tcp-echo\" and by \"tcp-echo\""},
        ErrorCase{.desc = "negative weight", .from = "weight: 20", .to = "weight: -5",
                  .want = "t.yaml:10: spec.subsets[0].weight: -5 is out of range 0-1000000"},
        ErrorCase{.desc = "huge weight", .from = "weight: 20", .to = "weight: 99999999999999999999",
                  .want = "t.yaml:10: spec.subsets[0].weight: 99999999999999999999 is out of range"},
        ErrorCase{.desc = "weight not an integer", .from = "weight: 20", .to = "weight: 2.5",
                  .want = "t.yaml:10: spec.subsets[0].weight: \"2.5\" is not an integer"},
        ErrorCase{.desc = "weight a list", .from = "weight: 20", .to = "weight: [1]",
                  .want = "t.yaml:10: spec.subsets[0].weight: must be an integer"},
        ErrorCase{.desc = "unknown top field", .from = "kind: TrafficShift\n", .to = "kind: TrafficShift\nstatus: {}\n",
                  .want = "t.yaml:3: status: unknown field; known here: apiVersion, kind, metadata, spec"},
        ErrorCase{.desc = "unknown spec field", .from = "  affinity: source-ip\n", .to = "  affinty: source-ip\n",
                  .want = "t.yaml:7: spec.affinty: unknown field; known here: listen, affinity, takeover, "
                          "outlierDetection, policy, rebalance, subsets"},
        ErrorCase{.desc = "unknown subset field", .from = "    weight: 80\n", .to = "    weight: 80\n    wieght: 1\n",
                  .want = "t.yaml:14: spec.subsets[1].wieght: unknown field"},
        ErrorCase{.desc = "bad affinity", .from = "affinity: source-ip", .to = "affinity: cookie",
                  .want = "t.yaml:7: spec.affinity: \"cookie\" is not none or source-ip"},
        ErrorCase{.desc = "wildcard backend", .from = "127.0.0.1:9001", .to = "0.0.0.0:9001",
                  .want = "a backend needs a concrete address"},
        ErrorCase{.desc = "invalid yaml", .from = "metadata:\n", .to = "metadata: [\n",
                  .want = "t.yaml:"},
        ErrorCase{.desc = "missing name", .from = "  name: tcp-echo\n", .to = "  labels: {}\n",
                  .want = "t.yaml:1: metadata.name: missing"},
        ErrorCase{.desc = "unserved version", .from = "tcpshift.io/v1alpha1", .to = "tcpshift.io/v9",
                  .want = "t.yaml:1: apiVersion: \"tcpshift.io/v9\" is not served for TrafficShift; use tcpshift.io/v1alpha1"},
        ErrorCase{.desc = "no listen", .from = "  listen: [\"0.0.0.0:31400\", \"[::]:31400\"]\n", .to = "",
                  .want = "spec.listen: needs at least one ADDRESS:PORT"},
        ErrorCase{.desc = "subset without weight", .from = "    weight: 80\n", .to = "",
                  .want = "t.yaml:12: spec.subsets[1].weight: missing"},
        ErrorCase{.desc = "subset without backends", .from = "    backends: [\"127.0.0.1:9001\", \"[::1]:9001\"]\n", .to = "",
                  .want = "t.yaml:9: spec.subsets[0].backends: needs at least one"},
        ErrorCase{.desc = "takeover not bool", .from = "  affinity: source-ip\n", .to = "  takeover: maybe\n",
                  .want = "t.yaml:7: spec.takeover: must be true or false"}),
    [](const auto& info) { return test_case_name(info.param.desc); });

// A reader that meets a shape it did not foresee (yaml-cpp throws on a key asked of a missing
// node) refuses the resource with its place and kind; nothing escapes as an exception.
TEST(Config, AShapeAReaderDidNotForeseeIsRefusedAsTheResources) {
    auto resources = parse_resources(testing::kNativeShift, "t.yaml", "default", nullptr);
    ASSERT_TRUE(resources) << resources.error().message;
    const Resource& r = resources->front();
    auto read = guarded(r, [&]() -> Result<std::string> {
        const YAML::Node spec = r.node["spec"];
        return spec["nothing"]["here"].Scalar();  // a key of a missing node: yaml-cpp throws
    });
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().kind, ErrorKind::kConfig);
    EXPECT_TRUE(read.error().message.starts_with("t.yaml:1: TrafficShift \"tcp-echo\": a field does not have the shape"))
        << read.error().message;
    // What reads without throwing passes through.
    auto fine = guarded(r, [&]() -> Result<std::string> { return r.name; });
    ASSERT_TRUE(fine);
    EXPECT_EQ(*fine, "tcp-echo");
    // A missing field asked of a typed accessor is missing, not a throw.
    auto missing = scalar_string(r.node["spec"]["nothing"], "t.yaml", "spec.nothing");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().message, "t.yaml: spec.nothing: missing");
}

TEST(Config, AllWeightsZeroIsRefused) {
    std::string text = kValid;
    text.replace(text.find("weight: 20"), 10, "weight: 0");
    text.replace(text.find("weight: 80"), 10, "weight: 0");
    auto services = parse(text);
    ASSERT_FALSE(services);
    EXPECT_NE(services.error().message.find("t.yaml:1: service \"tcp-echo\": every subset has weight 0"),
              std::string::npos)
        << services.error().message;
}

TEST(Config, EmptySubsetListIsRefused) {
    std::string text = kValid;
    text = text.substr(0, text.find("  subsets:")) + "  subsets: []\n";
    auto services = parse(text);
    ASSERT_FALSE(services);
    EXPECT_NE(services.error().message.find("spec.subsets: needs at least one subset"), std::string::npos)
        << services.error().message;
}

TEST(Config, DuplicateServiceNamesAreRefused) {
    auto services = parse(std::string(kValid) + "---\n" + kValid);
    ASSERT_FALSE(services);
    EXPECT_NE(services.error().message.find("t.yaml:16: metadata.name: service \"tcp-echo\" is defined twice; the "
                                            "other is at t.yaml:1"),
              std::string::npos)
        << services.error().message;
}

}  // namespace
}  // namespace tcpshift
