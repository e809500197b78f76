// Several files, or a directory, read as kubectl apply applies them: a later definition of a
// resource replaces an earlier one in place, with a note; one file may not define it twice.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "config/resolve.h"
#include "netns_fixture.h"

namespace tcpshift {
namespace {

// A tcp-echo TrafficShift with these weights, as one file holds it.
std::string shift_file(int v1, int v2) {
    return "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: tcp-echo}\nspec:\n"
           "  listen: [\"127.0.0.1:31400\"]\n  subsets:\n"
           "  - {name: v1, weight: " + std::to_string(v1) + ", backends: [\"127.0.0.1:9001\"]}\n"
           "  - {name: v2, weight: " + std::to_string(v2) + ", backends: [\"127.0.0.1:9002\"]}\n";
}

uint32_t v1_weight(const std::vector<Resource>& resources) {
    auto services = resolve_services(resources);
    EXPECT_TRUE(services) << services.error().message;
    return services ? (*services)[0].subsets[0].weight : 0;
}

TEST(LoadOrder, ALaterFileReplacesAResourceInPlaceWithANote) {
    const std::string other =
        "---\napiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: other}\n"
        "spec: {listen: [\"127.0.0.1:31401\"], subsets: [{name: a, backends: [\"127.0.0.1:9101\"]}]}\n";
    const auto a = testing::write_temp_file("a.yaml", shift_file(20, 80) + other);
    const auto b = testing::write_temp_file("b.yaml", shift_file(50, 50));
    Diagnostics diag;
    auto resources = load_resources({a, b}, "default", &diag);
    ASSERT_TRUE(resources) << resources.error().message;
    ASSERT_EQ(resources->size(), 2u);
    EXPECT_EQ((*resources)[0].where.str(), b + ":1") << "the later definition takes the earlier one's place";
    EXPECT_EQ((*resources)[1].name, "other");
    EXPECT_EQ(v1_weight(*resources), 50u);
    ASSERT_EQ(diag.notes.size(), 1u);
    EXPECT_EQ(diag.notes[0], b + ":1: TrafficShift \"tcp-echo\" in namespace default replaces the one at " + a +
                                 ":1 (a later -f wins, as with kubectl apply)");

    diag = {};
    resources = load_resources({b, a}, "default", &diag);
    ASSERT_TRUE(resources) << resources.error().message;
    EXPECT_EQ(v1_weight(*resources), 20u) << "the order of -f decides, not the names";
}

TEST(LoadOrder, ADirectoryAppliesItsFilesInNameOrder) {
    const std::filesystem::path dir = testing::write_temp_file("config.d", "") + ".d";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "20-v2.yaml") << shift_file(20, 80);  // written first, applied last
    std::ofstream(dir / "10-all-v1.yaml") << shift_file(100, 0);
    Diagnostics diag;
    auto resources = load_resources({dir.string()}, "default", &diag);
    ASSERT_TRUE(resources) << resources.error().message;
    ASSERT_EQ(resources->size(), 1u);
    EXPECT_EQ(v1_weight(*resources), 20u);
    ASSERT_EQ(diag.notes.size(), 1u);
    EXPECT_EQ(diag.notes[0], (dir / "20-v2.yaml").string() +
                                 ":1: TrafficShift \"tcp-echo\" in namespace default replaces the one at " +
                                 (dir / "10-all-v1.yaml").string() +
                                 ":1 (a directory's files apply in name order, the later wins, as with kubectl apply)");
}

TEST(LoadOrder, TheSameFileTwiceReplacesWithoutANote) {
    const auto a = testing::write_temp_file("a.yaml", shift_file(20, 80));
    Diagnostics diag;
    auto resources = load_resources({a, a}, "default", &diag);
    ASSERT_TRUE(resources) << resources.error().message;
    EXPECT_EQ(resources->size(), 1u);
    EXPECT_TRUE(diag.notes.empty()) << diag.notes[0];
}

// Within one file nothing orders two definitions but their lines, and the first would be
// dead text that `explain` still cites: a copy left behind, most likely. Refused.
TEST(LoadOrder, AResourceDefinedTwiceInOneFileIsRefused) {
    const auto a = testing::write_temp_file("a.yaml", shift_file(20, 80) + "---\n" + shift_file(50, 50));
    auto resources = load_resources({a}, "default", nullptr);
    ASSERT_FALSE(resources);
    EXPECT_EQ(resources.error().kind, ErrorKind::kConfig);
    EXPECT_EQ(resources.error().message, a + ":10: TrafficShift \"tcp-echo\" in namespace default is defined twice "
                                             "in this file; the other is at " + a +
                                             ":1 (only a later file or -f may replace it)");
}

}  // namespace
}  // namespace tcpshift
