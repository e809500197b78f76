// Hostile input: every file of tests/fuzz/corpus, and a few generated ones, is refused with
// exit 2 and one line, within bounded time and memory, and the pinned state stays
// byte-identical (every map dumped with bpftool, and the stored applied set).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "netns_fixture.h"
#include "dataplane/dataplane.h"
#include "dataplane/pins.h"

namespace tcpshift::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kValid = R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: tcp-echo}
spec:
  listen: ["127.0.0.1:31400"]
  subsets:
  - {name: v1, weight: 20, backends: ["127.0.0.1:9001"]}
  - {name: v2, weight: 80, backends: ["127.0.0.1:9002"]}
)";

class HostileInputTest : public NetnsTest {
   protected:
    // Every pinned map as bpftool prints it, and the stored state.
    std::string snapshot() {
        const uint64_t inode = netns_inode();
        std::string all;
        for (const auto& [map, fd] : kDataplaneMaps) {
            // socket storage: bpftool cannot list it
            if (std::string(map) == "connections" || std::string(map) == "clients") continue;
            const auto dump = run_command({"/usr/sbin/bpftool", "map", "dump", "pinned", pin_dir(inode) + "/" + map});
            EXPECT_EQ(dump.exit_code, 0) << map << ": " << dump.err;
            all += std::string("== ") + map + "\n" + dump.out;
        }
        std::ifstream state(state_dir(inode) + "/applied.json");
        all += "== applied.json\n" + std::string(std::istreambuf_iterator<char>(state), {});
        return all;
    }

    void expect_refused(const std::string& path) {
        // timeout(1) turns a hang into exit 124.
        const auto r = run_command({"/usr/bin/timeout", "60", TCPSHIFT_BIN, "apply", "-f", path, "--netns", netns()});
        EXPECT_EQ(r.exit_code, 2) << path << ": " << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << path << ": " << r.err;
        EXPECT_TRUE(r.err.starts_with("tcpshift: ")) << path << ": " << r.err;
        EXPECT_LT(r.max_rss_kib, 1024 * 1024) << path << " used " << r.max_rss_kib << " KiB";
    }
};

TEST_F(HostileInputTest, TheCorpusIsRefusedAndChangesNothing) {
    apply(kValid);
    const std::string before = snapshot();
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(std::string(TCPSHIFT_SOURCE_DIR) + "/tests/fuzz/corpus"))
        files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    ASSERT_GE(files.size(), 50u);
    for (const auto& file : files) expect_refused(file.string());
    EXPECT_EQ(before, snapshot());
}

TEST_F(HostileInputTest, GeneratedGiantsAreRefusedAndChangeNothing) {
    apply(kValid);
    const std::string before = snapshot();

    // 100 MB: refused by its size before it is read.
    const std::string huge = write_temp_file("huge.yaml", "");
    {
        std::ofstream out(huge);
        const std::string line = "# " + std::string(1022, 'x') + "\n";
        for (int i = 0; i < 100 * 1024; ++i) out << line;
    }
    expect_refused(huge);
    fs::remove(huge);

    // 10,000 subsets of one service.
    std::string many = "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: many}\nspec:\n"
                       "  listen: [\"127.0.0.1:31401\"]\n  subsets:\n";
    for (int i = 0; i < 10000; ++i)
        many += "  - {name: s" + std::to_string(i) + ", weight: 1, backends: [\"127.1." + std::to_string(i / 250) +
                "." + std::to_string(i % 250 + 1) + ":9000\"]}\n";
    expect_refused(write_temp_file("many.yaml", many));

    // 100,000 levels of flow nesting.
    expect_refused(write_temp_file("deep.yaml", "spec: " + std::string(100000, '[') + std::string(100000, ']') + "\n"));

    EXPECT_EQ(before, snapshot());
}

}  // namespace
}  // namespace tcpshift::testing
