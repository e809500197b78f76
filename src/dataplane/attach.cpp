#include "dataplane/attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/random.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <vector>

#include "steer_bpf.skel.h"
#include "bpf/abi.h"
#include "dataplane/map_access.h"
#include "dataplane/pins.h"
#include "dataplane/program.h"

namespace tcpshift {

namespace {

std::string pin_path(const std::string& dir, const char* name) { return dir + "/" + name; }

Result<uint64_t> random_seed() {
    uint64_t seed = 0;
    if (::getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) return fail(system_error("getrandom", errno));
    return seed;
}

// The netns inode a pinned sk_lookup link is attached to; 0 when its namespace is gone.
uint64_t link_netns_inode(const std::string& dir) {
    Fd link(bpf_obj_get(pin_path(dir, kPinSteerLink).c_str()));
    if (!link) return 0;
    bpf_link_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(link.get(), &info, &len) != 0) return 0;
    return info.netns.netns_ino;
}

// Creates the directory `tmp`, lets `pin` fill it, and renames it to `dir`, so that a reader
// never sees half a set of pins. `tmp` is removed again when a step fails.
Result<void> publish_pins(const std::string& tmp, const std::string& dir, const std::function<Result<void>()>& pin) {
    (void)remove_tree(tmp);
    auto published = [&]() -> Result<void> {
        if (::mkdir(tmp.c_str(), 0700) != 0) return fail(system_error("mkdir " + tmp, errno));
        if (auto ok = pin(); !ok) return ok;
        if (::rename(tmp.c_str(), dir.c_str()) != 0) return fail(system_error("rename " + tmp + " to " + dir, errno));
        return {};
    }();
    if (!published) (void)remove_tree(tmp);
    return published;
}

using Link = std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)>;

struct Links {
    Link steer;
    Link sockops;
    std::vector<Link> connect;  // kConnectLinks, in that order
};

// Attaches connect-time steering's programs to the cgroup.
Result<std::vector<Link>> attach_connect_programs(steer_bpf* skel, int cgroup_fd, const std::string& cgroup) {
    std::vector<Link> links;
    for (const auto& [program, pin] : kConnectLinks) {
        bpf_program* prog = bpf_object__find_program_by_name(skel->obj, program);
        Link link(prog ? bpf_program__attach_cgroup(prog, cgroup_fd) : nullptr, bpf_link__destroy);
        if (!link)
            return fail(system_error(std::string("attach ") + program + " to cgroup " + cgroup +
                                     " (connect-time steering needs Linux 5.8)", errno));
        links.push_back(std::move(link));
    }
    return links;
}

// Attaches sk_lookup to the calling thread's namespace and sock_ops to `cgroup` (empty: the
// root of the cgroup2 hierarchy). The links hold them only until they are pinned.
Result<Links> attach_programs(steer_bpf* skel, std::string cgroup) {
    if (cgroup.empty()) {
        auto found = default_cgroup2();
        if (!found) return fail(found.error());
        cgroup = *found;
    }
    Fd cgroup_fd(::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cgroup_fd) return fail(system_error("open cgroup " + cgroup, errno));
    struct statfs fs {};
    if (::fstatfs(cgroup_fd.get(), &fs) != 0 || fs.f_type != CGROUP2_SUPER_MAGIC)
        return fail(config_error("--cgroup " + cgroup + ": not a cgroup2 directory (`stat -f -c %T` says cgroup2fs "
                                 "for one)"));
    Fd netns_fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!netns_fd) return fail(system_error("open /proc/thread-self/ns/net", errno));

    std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)> steer_link(
        bpf_program__attach_netns(skel->progs.steer, netns_fd.get()), bpf_link__destroy);
    if (!steer_link) return fail(system_error("attach sk_lookup to the network namespace (needs Linux 5.9)", errno));
    std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)> sockops_link(
        bpf_program__attach_cgroup(skel->progs.register_and_count, cgroup_fd.get()), bpf_link__destroy);
    if (!sockops_link) return fail(system_error("attach sock_ops to cgroup " + cgroup, errno));
    auto connect = attach_connect_programs(skel, cgroup_fd.get(), cgroup);
    if (!connect) return fail(connect.error());
    return Links{.steer = std::move(steer_link), .sockops = std::move(sockops_link), .connect = std::move(*connect)};
}

// Pins every map and both links into `dir`.
Result<void> pin_attached(steer_bpf* skel, const Links& links, const std::string& dir) {
    for (const auto& [name, fd] : kDataplaneMaps) {
        const bpf_map* map = bpf_object__find_map_by_name(skel->obj, name);
        const int err = map ? bpf_obj_pin(bpf_map__fd(map), pin_path(dir, name).c_str()) : -ENOENT;
        if (err != 0) return fail(system_error(std::string("pin map \"") + name + "\"", libbpf_errno(err)));
    }
    if (bpf_obj_pin(bpf_link__fd(links.steer.get()), pin_path(dir, kPinSteerLink).c_str()) != 0 ||
        bpf_obj_pin(bpf_link__fd(links.sockops.get()), pin_path(dir, kPinSockopsLink).c_str()) != 0)
        return fail(system_error("pin links", errno));
    for (size_t i = 0; i < links.connect.size(); ++i)
        if (bpf_obj_pin(bpf_link__fd(links.connect[i].get()), pin_path(dir, kConnectLinks[i].pin).c_str()) != 0)
            return fail(system_error(std::string("pin link ") + kConnectLinks[i].pin, errno));
    return {};
}

}  // namespace

CgroupAttachment cgroup_attachment(uint64_t inode) {
    CgroupAttachment out;
    const std::string dir = pin_dir(inode);
    auto add = [&](const char* pin, const std::string& program) {
        Fd link(bpf_obj_get(pin_path(dir, pin).c_str()));
        if (!link) return;
        bpf_link_info info{};
        __u32 len = sizeof(info);
        if (bpf_obj_get_info_by_fd(link.get(), &info, &len) != 0 || info.type != BPF_LINK_TYPE_CGROUP) return;
        if (info.cgroup.cgroup_id == 0) return;  // detached
        out.cgroup_id = info.cgroup.cgroup_id;
        out.programs.push_back(program);
    };
    add(kPinSockopsLink, "sock_ops");
    for (const auto& [program, pin] : kConnectLinks) add(pin, std::string(pin).substr(sizeof("link_") - 1));
    return out;
}

bool dataplane_alive(uint64_t inode) { return link_netns_inode(pin_dir(inode)) == inode; }

bool dataplane_attached(const NetnsId& netns) {
    const std::string dir = pin_dir(netns.inode);
    struct stat st {};
    return ::stat(dir.c_str(), &st) == 0 && link_netns_inode(dir) == netns.inode;
}

Result<bool> attach_dataplane(const NetnsId& netns, const AttachOptions& options) {
    if (auto ok = ensure_bpffs(); !ok) return fail(ok.error());
    const std::string dir = pin_dir(netns.inode);
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) {
        if (link_netns_inode(dir) == netns.inode) return false;
        // A namespace that is gone left these; its inode was reused.
        if (auto ok = remove_namespace_files(netns.inode); !ok) return fail(ok.error());
    }

    auto seed = random_seed();
    if (!seed) return fail(seed.error());
    auto program = SteerProgram::load(*seed, netns.cookie, options.max_services);
    if (!program) return fail(program.error());
    steer_bpf* skel = program->skeleton();
    auto links = attach_programs(skel, options.cgroup);
    if (!links) return fail(links.error());

    const uint32_t zero = 0, one = 1;
    for (uint64_t cookie : options.client_netns)
        if (bpf_map_update_elem(bpf_map__fd(skel->maps.client_scope), &cookie, &one, BPF_ANY) != 0)
            return fail(system_error("update map \"client_scope\"", errno));
    const ts_meta meta{.abi_version = TS_ABI_VERSION, .client_scoped = options.client_netns.empty() ? 0u : 1u};
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.meta), &zero, &meta, BPF_ANY) != 0)
        return fail(system_error("update map \"meta\"", errno));

    // bpffs refuses names with a dot, so the private directory is not hidden.
    const std::string tmp = std::string(kPinRoot) + "/tmp-" + std::to_string(netns.inode) + "-" +
                            std::to_string(::getpid());
    if (auto ok = publish_pins(tmp, dir, [&] { return pin_attached(skel, *links, tmp); }); !ok) return fail(ok.error());
    return true;
}

Result<void> grant_pin_group(const NetnsId& netns, unsigned gid) {
    const std::string dir = group_pin_dir(netns.inode);
    if (auto ok = remove_tree(dir); !ok) return ok;
    if (gid == 0) return {};
    if (auto ok = ensure_group_bpffs(); !ok) return ok;
    auto maps = open_dataplane(netns);
    if (!maps) return fail(maps.error());
    const std::string tmp = dir + "-tmp-" + std::to_string(::getpid());
    auto set = [gid](const std::string& path, mode_t mode) -> Result<void> {
        if (::chown(path.c_str(), 0, gid) != 0) return fail(system_error("chown " + path, errno));
        if (::chmod(path.c_str(), mode) != 0) return fail(system_error("chmod " + path, errno));
        return {};
    };
    return publish_pins(tmp, dir, [&]() -> Result<void> {
        for (const auto& [name, fd] : kDataplaneMaps) {
            const std::string path = pin_path(tmp, name);
            if (bpf_obj_pin(((*maps).*fd).get(), path.c_str()) != 0) return fail(system_error("pin " + path, errno));
            if (auto ok = set(path, 0640); !ok) return ok;
        }
        return set(tmp, 0750);
    });
}

Result<PlanLimits> attached_limits(const NetnsId& netns) {
    PlanLimits limits = default_limits();
    if (!dataplane_attached(netns)) return limits;
    auto max_entries = [&](const char* name) -> Result<uint32_t> {
        const std::string path = pin_path(pin_dir(netns.inode), name);
        Fd fd(bpf_obj_get(path.c_str()));
        if (!fd) return fail(system_error("open pinned map " + path, errno));
        bpf_map_info info{};
        uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) return fail(system_error("read " + path, errno));
        return info.max_entries;
    };
    auto services = max_entries("services");
    if (!services) return fail(services.error());
    auto frontends = max_entries("frontends");
    if (!frontends) return fail(frontends.error());
    auto routes = max_entries("route_stats");
    if (!routes) return fail(routes.error());
    limits.max_routes = *routes;
    limits.max_services = *services;
    limits.max_frontends = *frontends;
    return limits;
}

namespace {

Result<ts_meta> read_meta(const DataplaneMaps& maps) {
    const uint32_t zero = 0;
    ts_meta meta{};
    if (auto ok = read_map(maps.meta, "meta", &zero, &meta); !ok) return fail(ok.error());
    return meta;
}

}  // namespace

Result<DataplaneMaps> open_dataplane(const NetnsId& netns) {
    const std::string dir = pin_dir(netns.inode);
    if (!dataplane_attached(netns))
        return fail(system_error("network namespace " + std::to_string(netns.inode) +
                                 ": tcpshift is not attached; run `tcpshift attach` or `tcpshift apply`"));
    const std::string incompatible = "the data plane pinned at " + dir + " was attached by a tcpshift with another "
                                     "map layout; detach it with that tcpshift, or remove " + dir +
                                     " (connections to its frontends are refused until tcpshift attaches again)";
    DataplaneMaps maps;
    for (const auto& [name, fd] : kDataplaneMaps) {
        maps.*fd = Fd(bpf_obj_get(pin_path(dir, name).c_str()));
        if (!(maps.*fd) && errno == ENOENT) return fail(system_error(incompatible + " (no map \"" + name + "\")"));
        if (!(maps.*fd)) return fail(system_error("open pinned map " + pin_path(dir, name), errno));
    }
    auto meta = read_meta(maps);
    if (!meta) return fail(meta.error());
    if (meta->abi_version != TS_ABI_VERSION)
        return fail(system_error(incompatible + " (ABI version " + std::to_string(meta->abi_version) + ", this one " +
                                 std::to_string(TS_ABI_VERSION) + ")"));
    return maps;
}

Result<AppliedSerials> applied_serials(const DataplaneMaps& maps) {
    auto meta = read_meta(maps);
    if (!meta) return fail(meta.error());
    return AppliedSerials{.applied = meta->applied_serial, .installing = meta->installing_serial};
}

namespace {

// One read and one write of "meta": `change` edits its serials.
template <typename F>
Result<void> change_serials(const DataplaneMaps& maps, F change) {
    const uint32_t zero = 0;
    auto meta = read_meta(maps);
    if (!meta) return fail(meta.error());
    change(*meta);
    return update_map(maps.meta, "meta", &zero, &*meta);
}

}  // namespace

Result<void> begin_installing(const DataplaneMaps& maps, uint64_t serial) {
    return change_serials(maps, [&](ts_meta& meta) { meta.installing_serial = serial; });
}

Result<void> set_applied_serial(const DataplaneMaps& maps, uint64_t serial) {
    return change_serials(maps, [&](ts_meta& meta) {
        meta.applied_serial = serial;
        meta.installing_serial = 0;
    });
}

Result<uint32_t> attachment_id(const DataplaneMaps& maps) {
    bpf_map_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(maps.meta.get(), &info, &len) != 0) return fail(system_error("read map \"meta\"", errno));
    return info.id;
}

Result<std::vector<uint64_t>> client_scope(const DataplaneMaps& maps) {
    std::vector<uint64_t> cookies;
    uint64_t key = 0, next = 0;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(maps.client_scope.get(), prev, &next) == 0) {
        cookies.push_back(next);
        key = next;
        prev = &key;
    }
    if (errno != ENOENT) return fail(system_error("iterate map \"client_scope\"", errno));
    return cookies;
}

Result<void> detach_dataplane(const NetnsId& netns) {
    // Unlinking the link pins detaches the programs; with no fd left they are freed.
    return remove_namespace_files(netns.inode);
}

}  // namespace tcpshift
