// What tcpshift leaves in the kernel and on disk: the pinned links and maps, their modes and
// the group that may read them, the stored applied set and ABI version checked before pins
// are reused, and what detach and prune remove.
#include <bpf/bpf.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "client.h"
#include "lifecycle_fixture.h"
#include "bpf/abi.h"
#include "dataplane/dataplane.h"
#include "dataplane/pins.h"

namespace tcpshift::testing {
namespace {

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
    // The kernel frees a deleted namespace, and detaches its links, in a work queue after the
    // last reference goes: a bounded wait for it.
    entry = listed(inode);
    for (int i = 0; i < 100 && entry.is_object() && entry["state"] == "attached"; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        entry = listed(inode);
    }
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

}  // namespace
}  // namespace tcpshift::testing
