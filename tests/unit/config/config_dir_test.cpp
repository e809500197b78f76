// Which files of a config directory are read: a ConfigMap as the kubelet mounts it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "netns_fixture.h"
#include "config/config.h"
#include "config/resolve.h"

namespace tcpshift {
namespace {

namespace fs = std::filesystem;

std::string shift(int v1, int v2) { return testing::tcp_echo_config(v1, v2); }

TEST(ConfigDirectory, AMountedConfigMapIsReadOnceThroughItsOwnNames) {
    const fs::path dir = fs::temp_directory_path() / ("tcpshift-configmap-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    // The kubelet's layout: tcp-echo.yaml -> ..data/tcp-echo.yaml, ..data -> the current
    // timestamped directory; and entries of its own that end like configs.
    const fs::path payload = dir / "..2026_11_26_10_00_00.123456789";
    fs::create_directories(payload);
    std::ofstream(payload / "tcp-echo.yaml") << shift(20, 80);
    fs::create_directory_symlink(payload.filename(), dir / "..data");
    fs::create_symlink(fs::path("..data") / "tcp-echo.yaml", dir / "tcp-echo.yaml");
    std::ofstream(dir / "..2026_11_26_09_00_00.yaml") << shift(50, 50);
    fs::create_symlink(fs::path("..data") / "tcp-echo.yaml", dir / "..data_tmp.yaml");

    Diagnostics diag;
    auto resources = load_resources({dir.string()}, "default", &diag);
    fs::remove_all(dir);
    ASSERT_TRUE(resources) << resources.error().message;
    ASSERT_EQ(resources->size(), 1u);
    EXPECT_EQ((*resources)[0].where.file, (dir / "tcp-echo.yaml").string());
    auto services = resolve_services(*resources, &diag);
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_EQ(services->size(), 1u);
    EXPECT_EQ((*services)[0].subsets[0].weight, 20u);
    EXPECT_TRUE(diag.notes.empty() && diag.warnings.empty()) << (diag.notes.empty() ? diag.warnings[0] : diag.notes[0]);
}

TEST(ConfigDirectory, ConfigFileNames) {
    struct Case {
        const char* name;
        bool config;
    } const cases[] = {
        {.name = "tcp-echo.yaml", .config = true},  {.name = "tcp-echo.yml", .config = true},
        {.name = "tcp-echo.json", .config = true},  {.name = "README.md", .config = false},
        {.name = "..data", .config = false},        {.name = "..data_tmp", .config = false},
        {.name = "..tcp-echo.yaml", .config = false}, {.name = ".tcp-echo.yaml.swp", .config = false},
    };
    for (const auto& c : cases) EXPECT_EQ(is_config_file_name(c.name), c.config) << c.name;
}

}  // namespace
}  // namespace tcpshift
