// Attach, apply, refuse, detach: what tcpshift leaves in the kernel and on disk.
#include <bpf/bpf.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "client.h"
#include "netns_fixture.h"
#include "stats.h"
#include "bpf/abi.h"
#include "dataplane/dataplane.h"
#include "dataplane/pins.h"

namespace tcpshift::testing {
namespace {

class LifecycleTest : public NetnsTest {
   protected:
    uint64_t netns_inode() {
        auto in = enter();
        return current_netns()->inode;
    }
    std::string pins() { return pin_dir(netns_inode()); }
};

constexpr const char* kConfig = R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata:
  name: tcp-echo
spec:
  listen: ["0.0.0.0:31400"]
  subsets:
  - name: v1
    weight: 50
    backends: ["127.0.0.1:9001"]
  - name: v2
    weight: 50
    backends: ["127.0.0.1:9002"]
)";

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// Program ids of the links pinned in `dir`, read with bpftool as a user would.
std::vector<int> pinned_program_ids(const std::string& dir) {
    std::vector<int> ids;
    for (const char* link : {kPinSteerLink, kPinSockopsLink}) {
        const auto r = run_command({"/usr/sbin/bpftool", "--json", "link", "show", "pinned", dir + "/" + link});
        if (r.exit_code != 0) continue;
        ids.push_back(nlohmann::json::parse(r.out)["prog_id"].get<int>());
    }
    return ids;
}

bool program_exists(int id) {
    return run_command({"/usr/sbin/bpftool", "prog", "show", "id", std::to_string(id)}).exit_code == 0;
}

TEST_F(LifecycleTest, DetachLeavesNoProgramAndNoPin) {
    apply(kConfig);
    const std::string dir = pins();
    ASSERT_TRUE(std::filesystem::exists(dir));
    const auto ids = pinned_program_ids(dir);
    ASSERT_EQ(ids.size(), 2u) << "the sk_lookup and sock_ops links are pinned";
    for (int id : ids) ASSERT_TRUE(program_exists(id));
    // bpftool reads the pinned maps with named fields (BTF).
    const auto dump = run_command({"/usr/sbin/bpftool", "map", "dump", "pinned", dir + "/frontends"});
    ASSERT_EQ(dump.exit_code, 0) << dump.err;
    EXPECT_NE(dump.out.find("\"service_id\""), std::string::npos) << dump.out;
    EXPECT_NE(dump.out.find("\"port\": 31400"), std::string::npos) << dump.out;

    const auto r = tcpshift_here({"detach"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir));
    EXPECT_FALSE(std::filesystem::exists(state_dir(netns_inode())));
    for (int id : ids) EXPECT_FALSE(program_exists(id)) << "program " << id << " is still loaded";
    const auto status = tcpshift_here({"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    EXPECT_FALSE(nlohmann::json::parse(status.out)["attached"].get<bool>());
}

TEST_F(LifecycleTest, AttachIsIdempotentAndPinsAreRootOnly) {
    auto r = tcpshift_here({"attach"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("attached to network namespace"), std::string::npos);
    r = tcpshift_here({"attach"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("already attached"), std::string::npos) << r.out;
    struct stat st {};
    ASSERT_EQ(::stat(pins().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0077, 0u) << "pin directory mode " << std::oct << (st.st_mode & 0777);
    ASSERT_EQ(::stat((pins() + "/tables").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0077, 0u) << "map pin mode " << std::oct << (st.st_mode & 0777);
}

// Opens a pinned object as uid 65534 with group `gid` and reads one element; returns 0 on
// success or the errno that stopped it. Runs in a child, since the ids cannot be regained.
int read_pin_as(gid_t gid, const std::string& path, uint32_t file_flags) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(65534) != 0) ::_exit(250);
        LIBBPF_OPTS(bpf_obj_get_opts, opts, .file_flags = file_flags);
        const int fd = bpf_obj_get_opts(path.c_str(), &opts);
        if (fd < 0) ::_exit(errno);
        if (path.ends_with("_stats")) {
            uint32_t key = 0;
            std::vector<uint8_t> value(1 << 16);
            if (bpf_map_lookup_elem(fd, &key, value.data()) != 0) ::_exit(errno);
        }
        ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

// The mode of a path, or 0 when it is missing.
mode_t mode_of(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

// Sets the mode of /sys/fs/bpf for the test's span: systemd and bpftool mount it 0700, and a
// fresh machine where tcpshift mounts it has 0700 too.
class BpffsMode {
   public:
    explicit BpffsMode(mode_t mode) : before_(mode_of(kBpffsMount)) { ::chmod(kBpffsMount, mode); }
    ~BpffsMode() { ::chmod(kBpffsMount, before_); }

   private:
    mode_t before_;
};

TEST_F(LifecycleTest, APinGroupMayReadTheMapsAndNothingElse) {
    apply(kConfig);
    BpffsMode systemd_mode(0700);
    const mode_t pin_root_mode = mode_of(kPinRoot);
    const group* daemon = ::getgrnam("daemon");
    ASSERT_NE(daemon, nullptr);
    const gid_t member = daemon->gr_gid;
    const gid_t other = 65534;
    const std::string shared = group_pin_dir(netns_inode());
    const std::string stats = shared + "/service_stats";
    EXPECT_EQ(read_pin_as(member, pins() + "/service_stats", BPF_F_RDONLY), EACCES) << "root only before --pin-group";
    EXPECT_FALSE(std::filesystem::exists(shared));

    auto r = tcpshift_here({"attach", "--pin-group", "daemon"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("maps readable by group daemon in " + shared), std::string::npos) << r.out;
    EXPECT_EQ(read_pin_as(member, stats, BPF_F_RDONLY), 0) << "a member reads the counters past a 0700 /sys/fs/bpf";
    EXPECT_EQ(read_pin_as(member, shared + "/tables", BPF_F_RDONLY), 0);
    EXPECT_EQ(read_pin_as(member, stats, 0), EACCES) << "read-write is refused to the group";
    EXPECT_FALSE(std::filesystem::exists(shared + "/" + kPinSteerLink)) << "links are not shared";
    EXPECT_EQ(read_pin_as(member, pins() + "/" + kPinSteerLink, BPF_F_RDONLY), EACCES) << "links stay root only";
    EXPECT_EQ(read_pin_as(other, stats, BPF_F_RDONLY), EACCES) << "a non-member reads nothing";
    EXPECT_EQ(mode_of(kBpffsMount), 0700u) << "the host's bpffs keeps its mode";
    EXPECT_EQ(mode_of(kPinRoot), pin_root_mode) << "the pin root every namespace shares keeps its mode";
    EXPECT_EQ(mode_of(pins()), 0700u) << "the namespace's own pins stay root's";
    // The group reads the same maps the data plane writes: a connection shows in the copy.
    {
        Child v1 = start_echo(netns(), "127.0.0.1:9001", "one");
        Child v2 = start_echo(netns(), "127.0.0.1:9002", "two");
        auto in = enter();
        EXPECT_EQ(tally(endpoint("127.0.0.1:31400"), 10).failures, 0u);
    }
    Fd shared_stats(bpf_obj_get(stats.c_str()));
    ASSERT_TRUE(shared_stats);
    auto counters = read_service_counters(DataplaneMaps{.service_stats = std::move(shared_stats)}, 0);
    ASSERT_TRUE(counters) << counters.error().message;
    EXPECT_EQ(counters->lookups, 10u);

    r = tcpshift_here({"attach", "--pin-group", "root"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_FALSE(std::filesystem::exists(shared)) << "--pin-group root takes the access back";
    EXPECT_NE(read_pin_as(member, stats, BPF_F_RDONLY), 0);

    ASSERT_EQ(tcpshift_here({"attach", "--pin-group", "daemon"}).exit_code, 0);
    ASSERT_TRUE(std::filesystem::exists(shared));
    ASSERT_EQ(tcpshift_here({"detach"}).exit_code, 0);
    EXPECT_FALSE(std::filesystem::exists(shared)) << "detach removes the group's pins";

    r = tcpshift_here({"attach", "--pin-group", "no-such-group"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.err, "tcpshift: attach: --pin-group no-such-group: no such group\n");
}

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

}  // namespace
}  // namespace tcpshift::testing

namespace tcpshift::testing {
namespace {

// 256 services, one of them with 16 subsets of 16 backends: the documented limits install,
// all 256 backends of the big service register, and it splits by its 16 unequal weights.
TEST_F(LifecycleTest, TheDocumentedLimitsInstallAndServe) {
    constexpr int kServices = 256, kSubsets = 16, kPerSubset = 16;
    // Weights 1 to 16: unequal, and none but the last a multiple of the subset's 16 backends,
    // so each backend's share of its subset is a fraction.
    std::vector<double> weights;
    for (int k = 0; k < kSubsets; ++k) weights.push_back(k + 1);
    const auto port_of = [](int k, int b) { return 30000 + k * kPerSubset + b; };
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
                        std::to_string(s == 0 ? port_of(k, b) : 40000 + s) + "\"";
            text += "]\n";
        }
    }
    // One process per subset of svc0, listening on its 16 backends and answering "sK".
    std::vector<Child> subsets;
    for (int k = 0; k < kSubsets; ++k) {
        std::vector<std::string> more;
        for (int b = 1; b < kPerSubset; ++b) {
            more.push_back("--listen");
            more.push_back("127.0.0.1:" + std::to_string(port_of(k, b)));
        }
        subsets.push_back(
            start_echo(netns(), "127.0.0.1:" + std::to_string(port_of(k, 0)), "s" + std::to_string(k), more));
        ASSERT_FALSE(subsets.back().first_line().empty()) << "subset s" << k << " did not start";
    }
    Child last = start_echo(netns(), "127.0.0.1:40255", "last");
    apply(text);
    const auto status = tcpshift_here({"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    const auto j = nlohmann::json::parse(status.out);
    ASSERT_EQ(j["services"].size(), static_cast<size_t>(kServices));
    int ready = 0;
    for (const auto& svc : j["services"])
        if (svc["service"] == "svc0")
            for (const auto& subset : svc["subsets"])
                for (const auto& b : subset["backends"]) ready += b["ready"].get<bool>();
    EXPECT_EQ(ready, kSubsets * kPerSubset) << "every backend of svc0 listens";

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

// The stored applied set must be the one the maps hold. Lost or replaced by an older copy,
// it is refused with the fix, never compiled into ids that live sockets carry.
TEST_F(LifecycleTest, AMissingOrStaleAppliedSetIsRefusedNotGuessed) {
    apply(kConfig);
    const std::string file = state_dir(netns_inode()) + "/applied.json";
    const std::string first = read_file(file);
    std::string next = kConfig;
    next.replace(next.find("weight: 50"), 10, "weight: 20");
    apply(next);
    const std::string other = write_temp_file("other.yaml", next);

    ASSERT_EQ(std::rename(file.c_str(), (file + ".aside").c_str()), 0);
    for (const auto& r : {tcpshift_here({"apply", "-f", other}), tcpshift_here({"status"})}) {
        EXPECT_EQ(r.exit_code, 1);
        EXPECT_NE(r.err.find(file + " is missing, but the data plane pinned at " + pins() + " holds applied set #2"),
                  std::string::npos)
            << r.err;
        EXPECT_NE(r.err.find("run `tcpshift detach`, then apply again"), std::string::npos) << r.err;
    }
    std::ofstream(file) << first;  // an older copy
    auto r = tcpshift_here({"apply", "-f", other});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find(file + " holds applied set #1, but the data plane pinned at " + pins() + " holds applied set #2"),
              std::string::npos)
        << r.err;
    ASSERT_EQ(std::rename((file + ".aside").c_str(), file.c_str()), 0);
    EXPECT_EQ(tcpshift_here({"verify"}).exit_code, 0) << "the right file back, all agrees again";
}

// A data plane pinned with another map layout is refused, never written with this one.
TEST_F(LifecycleTest, PinsOfAnotherAbiVersionAreRefused) {
    apply(kConfig);
    Fd meta(bpf_obj_get((pins() + "/meta").c_str()));
    ASSERT_TRUE(meta);
    const uint32_t zero = 0;
    ts_meta old{.abi_version = 1, .applied_serial = 1};
    ASSERT_EQ(bpf_map_update_elem(meta.get(), &zero, &old, BPF_ANY), 0);
    const std::string frontends_before =
        run_command({"/usr/sbin/bpftool", "map", "dump", "pinned", pins() + "/frontends"}).out;
    for (const auto& r : {tcpshift_here({"apply", "-f", write_temp_file("c.yaml", kConfig)}), tcpshift_here({"status"})}) {
        EXPECT_EQ(r.exit_code, 1);
        EXPECT_NE(r.err.find("was attached by a tcpshift with another map layout"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("(ABI version 1, this one " + std::to_string(TS_ABI_VERSION) + ")"), std::string::npos)
            << r.err;
    }
    EXPECT_EQ(run_command({"/usr/sbin/bpftool", "map", "dump", "pinned", pins() + "/frontends"}).out, frontends_before);
    EXPECT_EQ(tcpshift_here({"detach"}).exit_code, 0) << "detach still removes it";
    EXPECT_FALSE(std::filesystem::exists(pins()));
}

// A namespace deleted without detach leaves pins, state and its sock_ops link: status --all
// shows it gone, prune removes exactly it, and a live neighbour keeps serving.
TEST_F(LifecycleTest, ADeletedNamespaceIsListedGoneAndPruned) {
    apply(kConfig);
    const uint64_t inode = netns_inode();
    const std::string dir = pins();
    const auto ids = pinned_program_ids(dir);
    ASSERT_EQ(ids.size(), 2u);
    auto listed = [&](uint64_t ino) -> nlohmann::json {
        const auto r = tcpshift({"status", "--all", "--json"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        const auto j = nlohmann::json::parse(r.out);
        for (const auto& ns : j["namespaces"])
            if (ns["netns_inode"] == ino) return ns;
        return nullptr;
    };
    auto entry = listed(inode);
    ASSERT_FALSE(entry.is_null());
    EXPECT_EQ(entry["state"], "attached");
    EXPECT_EQ(entry["name"], netns());
    EXPECT_EQ(entry["resources"], 1);

    ASSERT_EQ(run_command({"/sbin/ip", "netns", "del", netns()}).exit_code, 0);
    entry = listed(inode);
    ASSERT_FALSE(entry.is_null()) << "the pins outlive the namespace";
    EXPECT_EQ(entry["state"], "gone");
    const auto text = tcpshift({"status", "--all"});
    EXPECT_NE(text.out.find("gone (namespace deleted without detach)"), std::string::npos) << text.out;

    const auto r = tcpshift({"prune"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("deleted network namespace " + std::to_string(inode)), std::string::npos) << r.out;
    EXPECT_TRUE(listed(inode).is_null());
    EXPECT_FALSE(std::filesystem::exists(dir));
    EXPECT_FALSE(std::filesystem::exists(state_dir(inode)));
    for (int id : ids) EXPECT_FALSE(program_exists(id)) << "program " << id << " is still loaded";
    EXPECT_NE(tcpshift({"prune"}).out.find("nothing to prune"), std::string::npos);
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

}  // namespace
}  // namespace tcpshift::testing
