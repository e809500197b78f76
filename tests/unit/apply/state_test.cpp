// The applied set without root: edits of the set (apply, delete, set, the agent) and the file
// it is kept in, in a temporary directory.
#include "apply/state.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace tcpshift {
namespace {

namespace fs = std::filesystem;

Resource shift(const std::string& name, const std::string& ns, int weight, const std::string& file = "a.yaml") {
    const std::string text = "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata:\n  name: " + name +
                             "\n  namespace: " + ns +
                             "\nspec:\n  listen: [\"0.0.0.0:31400\"]\n  subsets:\n  - name: v1\n    weight: " +
                             std::to_string(weight) + "\n    backends: [\"127.0.0.1:9001\"]\n";
    auto parsed = parse_resources(text, file, "default", nullptr);
    EXPECT_TRUE(parsed && parsed->size() == 1) << (parsed ? "" : parsed.error().message);
    return parsed->front();
}

// The weight of the stored document of `key`: what a later load compiles.
int stored_weight(const AppliedState& state, const ResourceKey& key) {
    for (const auto& r : state.resources)
        if (r.key == key) return YAML::Load(r.yaml)["spec"]["subsets"][0]["weight"].as<int>();
    return -1;
}

AppliedState applied_with(const std::vector<Resource>& resources) {
    auto next = with_resources(AppliedState{}, resources);
    EXPECT_TRUE(next) << next.error().message;
    return next->state;
}

TEST(ResourceSet, ApplyReplacesByKeyInPlaceAndAppendsNewKeys) {
    const AppliedState before = applied_with({shift("a", "default", 10), shift("b", "default", 20)});
    auto next = with_resources(before, {shift("a", "default", 70, "b.yaml"), shift("a", "prod", 30)});
    ASSERT_TRUE(next) << next.error().message;
    ASSERT_EQ(next->state.resources.size(), 3u);
    EXPECT_EQ(next->state.resources[0].key.str(), "TrafficShift.tcpshift.io/default/a");
    EXPECT_EQ(next->state.resources[1].key.str(), "TrafficShift.tcpshift.io/default/b");
    EXPECT_EQ(next->state.resources[2].key.str(), "TrafficShift.tcpshift.io/prod/a") << "same name, other namespace";
    EXPECT_EQ(stored_weight(next->state, next->state.resources[0].key), 70);
    EXPECT_EQ(next->state.resources[0].source, "b.yaml:1");
    // What compiles is in the same order, the replaced one in the form that cites its file.
    ASSERT_EQ(next->resources.size(), 3u);
    EXPECT_EQ(next->resources[0].where.file, "b.yaml");
    EXPECT_EQ(next->resources[1].where.file, "applied TrafficShift.tcpshift.io/default/b (from a.yaml:1)");
    EXPECT_TRUE(next->changed);
}

TEST(ResourceSet, ASourceNamesWhoChangedIt) {
    const AppliedState before = applied_with({shift("a", "default", 10)});
    auto next = with_resources(before, {shift("a", "default", 90)}, "tcpshift set");
    ASSERT_TRUE(next) << next.error().message;
    EXPECT_EQ(next->state.resources[0].source, "tcpshift set");
}

TEST(ResourceSet, DeleteRemovesOnlyTheKeysNamedAndSaysWhenNothingWas) {
    const AppliedState before = applied_with({shift("a", "default", 10), shift("a", "prod", 20)});
    auto next = without_resources(before, {shift("a", "prod", 0).key()});
    ASSERT_TRUE(next) << next.error().message;
    ASSERT_EQ(next->state.resources.size(), 1u);
    EXPECT_EQ(next->state.resources[0].key.ns, "default");
    EXPECT_EQ(next->resources.size(), 1u);
    EXPECT_TRUE(next->changed);
    auto none = without_resources(before, {shift("zzz", "default", 0).key()});
    ASSERT_TRUE(none) << none.error().message;
    EXPECT_FALSE(none->changed);
    EXPECT_EQ(none->state.resources.size(), 2u);
}

TEST(ResourceSet, TheAgentsWholeSetKeepsIdsRoutesAndSerial) {
    AppliedState before = applied_with({shift("a", "default", 10), shift("b", "default", 20)});
    before.ids.services = {{"a", 3}};
    before.ids.backends = {{"127.0.0.1:9001", 7}};
    before.local_routes = {*parse_address("10.0.0.1", 0)};
    before.serial = 41;
    const NextSet next = only_resources(before, {shift("b", "default", 50)});
    ASSERT_EQ(next.state.resources.size(), 1u) << "a resource the files no longer hold is gone";
    EXPECT_EQ(stored_weight(next.state, next.state.resources[0].key), 50);
    EXPECT_EQ(next.state.ids.services, before.ids.services);
    EXPECT_EQ(next.state.ids.backends, before.ids.backends);
    EXPECT_EQ(next.state.local_routes, before.local_routes);
    EXPECT_EQ(next.state.serial, 41u);
}

class StateFileTest : public ::testing::Test {
   protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "tcpshift-state-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
    }
    void TearDown() override { fs::remove_all(dir_); }
    void write(const std::string& text) { std::ofstream(dir_ / kStateFileName) << text; }
    fs::path dir_;
};

TEST_F(StateFileTest, AMissingFileIsAnEmptySet) {
    auto state = load_state_at((dir_ / "absent").string());
    ASSERT_TRUE(state) << state.error().message;
    EXPECT_TRUE(state->resources.empty());
    EXPECT_EQ(state->serial, 0u);
}

TEST_F(StateFileTest, WhatIsSavedLoadsBackTheSame) {
    AppliedState saved = applied_with({shift("a", "default", 10), shift("b", "prod", 20)});
    saved.ids.services = {{"a", 1}, {"b", 2}};
    saved.ids.backends = {{"127.0.0.1:9001", 5}};
    saved.local_routes = {*parse_address("10.0.0.1", 0), *parse_address("fd00::1", 0)};
    saved.serial = 12;
    ASSERT_TRUE(save_state_at(dir_.string(), saved));
    for (const auto& entry : fs::directory_iterator(dir_))
        EXPECT_EQ(entry.path().filename(), kStateFileName) << "the temporary file is renamed";
    auto loaded = load_state_at(dir_.string());
    ASSERT_TRUE(loaded) << loaded.error().message;
    ASSERT_EQ(loaded->resources.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(loaded->resources[i].key, saved.resources[i].key);
        EXPECT_EQ(loaded->resources[i].source, saved.resources[i].source);
        EXPECT_EQ(loaded->resources[i].yaml, saved.resources[i].yaml);
    }
    EXPECT_EQ(loaded->ids.services, saved.ids.services);
    EXPECT_EQ(loaded->ids.backends, saved.ids.backends);
    EXPECT_EQ(loaded->local_routes, saved.local_routes);
    EXPECT_EQ(loaded->serial, 12u);
    auto resources = stored_resources(*loaded);
    ASSERT_TRUE(resources) << resources.error().message;
    EXPECT_EQ((*resources)[1].ns, "prod") << "a stored resource keeps its namespace";
}

TEST_F(StateFileTest, ABrokenFileIsRefusedNamingItAndTheWayOut) {
    write("{\"resources\": [");
    auto truncated = load_state_at(dir_.string());
    ASSERT_FALSE(truncated);
    EXPECT_NE(truncated.error().message.find((dir_ / kStateFileName).string()), std::string::npos);
    EXPECT_NE(truncated.error().message.find("tcpshift detach"), std::string::npos);
    write(R"({"resources": [{"key": "no-slashes", "source": "x", "yaml": ""}], "ids": {"services": {}, "backends": {}}})");
    auto bad_key = load_state_at(dir_.string());
    ASSERT_FALSE(bad_key);
    EXPECT_NE(bad_key.error().message.find("not a resource key"), std::string::npos) << bad_key.error().message;
}

}  // namespace
}  // namespace tcpshift
