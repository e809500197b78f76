#include "dataplane/dataplane.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "steer_bpf.skel.h"
#include "bpf/abi.h"
#include "bpf/flow_hash.h"
#include "dataplane/pins.h"
#include "dataplane/sock_diag.h"

namespace tcpshift {

static_assert(sizeof(ts_frontend_key) == 24);
static_assert(sizeof(ts_frontend) == 4);
static_assert(sizeof(ts_service) == 16);
static_assert(sizeof(ts_flow_key) == 40);
static_assert(sizeof(ts_table) == 8 + 2 * TS_MAX_SERVICE_BACKENDS + 2 * (TS_TABLE_SLOTS + 1));
static_assert(sizeof(ts_table) % 4 == 0);
static_assert(sizeof(ts_listener_key) == 32);
static_assert(sizeof(ts_service_stats) == 24);
static_assert(sizeof(ts_backend_stats) == 40);
static_assert(sizeof(ts_connection) == 24);
static_assert(sizeof(ts_listener) == 8);
static_assert(sizeof(ts_backend_tag) == 4);
static_assert(sizeof(ts_meta) == 16);

void SteerBpfDeleter::operator()(steer_bpf* skel) const { steer_bpf::destroy(skel); }

namespace {

// CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns().
uint64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// libbpf returns -errno or sets errno, depending on the call.
int libbpf_errno(int ret) { return ret < 0 ? -ret : errno; }

Fd dup_fd(int fd) { return Fd(::fcntl(fd, F_DUPFD_CLOEXEC, 3)); }

ts_frontend_key frontend_key(const Endpoint& ep) {
    ts_frontend_key key{};
    key.family = static_cast<__u32>(ep.family);
    key.port = ep.port;
    std::memcpy(key.addr, ep.addr.data(), sizeof(key.addr));
    return key;
}

ts_listener_key listener_key(const Endpoint& ep, uint64_t cookie) {
    ts_listener_key key{};
    key.netns_cookie = cookie;
    key.family = static_cast<__u32>(ep.family);
    key.port = ep.port;
    std::memcpy(key.addr, ep.addr.data(), sizeof(key.addr));
    return key;
}

Result<void> update(const Fd& map, const char* name, const void* key, const void* value) {
    if (bpf_map_update_elem(map.get(), key, value, BPF_ANY) != 0)
        return fail(system_error(std::string("update map \"") + name + "\"", errno));
    return {};
}

Result<void> remove(const Fd& map, const char* name, const void* key) {
    if (bpf_map_delete_elem(map.get(), key) != 0 && errno != ENOENT)
        return fail(system_error(std::string("delete from map \"") + name + "\"", errno));
    return {};
}

// Zeroes one entry of a per-CPU map on every CPU (creating it in a hash).
template <typename Key>
Result<void> clear_percpu(const Fd& map, const char* name, const Key& key, size_t value_size) {
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) return fail(system_error("count possible CPUs", -cpus));
    std::vector<uint8_t> zeros(static_cast<size_t>(cpus) * ((value_size + 7) & ~size_t{7}), 0);
    return update(map, name, &key, zeros.data());
}

template <typename T, typename Key>
Result<T> sum_percpu(const Fd& map, const char* name, const Key& index) {
    static_assert(sizeof(T) % 8 == 0);
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) return fail(system_error("count possible CPUs", -cpus));
    std::vector<T> values(static_cast<size_t>(cpus));
    if (bpf_map_lookup_elem(map.get(), &index, values.data()) != 0)
        return fail(system_error(std::string("read map \"") + name + "\"", errno));
    T total{};
    auto* out = reinterpret_cast<uint64_t*>(&total);
    for (const auto& v : values) {
        const auto* in = reinterpret_cast<const uint64_t*>(&v);
        for (size_t i = 0; i < sizeof(T) / 8; ++i) out[i] += in[i];
    }
    return total;
}

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

// Returns once every BPF program that was running when it was called has finished. Replacing
// an entry of a map-in-map makes the kernel wait for an RCU grace period before the syscall
// returns (maybe_wait_bpf_programs), and sk_lookup runs under RCU; the map is a throwaway.
Result<void> wait_for_running_programs() {
    Fd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "ts_rcu_inner", 4, 4, 1, nullptr));
    if (!inner) return fail(system_error("create map \"ts_rcu_inner\"", errno));
    LIBBPF_OPTS(bpf_map_create_opts, opts, .inner_map_fd = static_cast<__u32>(inner.get()));
    Fd outer(bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "ts_rcu_wait", 4, 4, 1, &opts));
    if (!outer) return fail(system_error("create map \"ts_rcu_wait\"", errno));
    const uint32_t key = 0;
    const uint32_t value = static_cast<uint32_t>(inner.get());
    if (bpf_map_update_elem(outer.get(), &key, &value, BPF_ANY) != 0)
        return fail(system_error("update map \"ts_rcu_wait\"", errno));
    return {};
}

}  // namespace

namespace {

// Names the first kernel feature tcpshift needs that this kernel lacks, with the Linux
// version that brought it, so an old kernel fails with that name and not with a verifier log.
Result<void> probe_kernel_features() {
    struct Feature {
        const char* what;
        int supported;  // 1 yes, 0 no, < 0 the probe itself failed (then the load will tell)
    };
    const Feature features[] = {
        {"the sk_lookup program type (Linux 5.9)", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_LOOKUP, nullptr)},
        {"the sock_ops program type (Linux 4.13)", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SOCK_OPS, nullptr)},
        {"SOCKHASH maps (Linux 4.18)", libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKHASH, nullptr)},
        {"socket-local storage (Linux 5.2)", libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SK_STORAGE, nullptr)},
        {"bpf_sk_assign in sk_lookup (Linux 5.9)",
         libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_LOOKUP, BPF_FUNC_sk_assign, nullptr)},
        {"bpf_get_netns_cookie in sock_ops (Linux 5.15)",
         libbpf_probe_bpf_helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie, nullptr)},
        {"bpf_sk_storage_get in sock_ops (Linux 5.3)",
         libbpf_probe_bpf_helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sk_storage_get, nullptr)},
    };
    for (const auto& f : features) {
        if (f.supported != 0) continue;
        utsname u{};
        ::uname(&u);
        return fail(system_error(std::string("this kernel (Linux ") + u.release + ") lacks " + f.what +
                                 "; tcpshift needs Linux 5.15 or later"));
    }
    return {};
}

}  // namespace

Result<SteerProgram> SteerProgram::load(uint64_t hash_seed, uint64_t netns_cookie, uint32_t max_services) {
    if (auto ok = probe_kernel_features(); !ok) return fail(ok.error());
    SteerProgram program;
    program.skel_.reset(steer_bpf::open());
    if (!program.skel_) return fail(system_error("open BPF object steer_bpf", errno));
    program.skel_->rodata->hash_seed = hash_seed;
    program.skel_->rodata->netns_cookie = netns_cookie;
    if (max_services != 0) {
        auto& m = program.skel_->maps;
        const uint32_t frontends = std::max<uint32_t>(TS_MAX_FRONTENDS, 4 * max_services);
        if (bpf_map__set_max_entries(m.services, max_services) != 0 ||
            bpf_map__set_max_entries(m.service_stats, max_services) != 0 ||
            bpf_map__set_max_entries(m.tables, max_services * TS_TABLE_FAMILIES * TS_TABLE_GENERATIONS) != 0 ||
            bpf_map__set_max_entries(m.frontends, frontends) != 0 ||
            bpf_map__set_max_entries(m.route_stats, std::max<uint32_t>(TS_MAX_ROUTES, 4 * max_services)) != 0)
            return fail(system_error("size the maps for " + std::to_string(max_services) + " services", errno));
    }
    if (int err = steer_bpf::load(program.skel_.get()); err != 0) {
        const int e = libbpf_errno(err);
        std::string why = "load BPF programs (sk_lookup needs Linux 5.9, sock_ops netns cookies 5.15)";
        if (e == EPERM) why = "load BPF programs: root (CAP_BPF and CAP_NET_ADMIN) is needed";
        return fail(system_error(why, e));
    }
    return program;
}

int SteerProgram::steer_fd() const { return bpf_program__fd(skel_->progs.steer); }
int SteerProgram::register_and_count_fd() const { return bpf_program__fd(skel_->progs.register_and_count); }

Result<DataplaneMaps> SteerProgram::maps() const {
    DataplaneMaps maps;
    for (const auto& [name, fd] : kDataplaneMaps) {
        const bpf_map* map = bpf_object__find_map_by_name(skel_->obj, name);
        maps.*fd = map ? dup_fd(bpf_map__fd(map)) : Fd();
        if (!(maps.*fd)) return fail(system_error(std::string("duplicate the fd of map \"") + name + "\"", errno));
    }
    return maps;
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
        if (auto ok = remove_tree(dir); !ok) return fail(ok.error());
        if (auto ok = remove_tree(state_dir(netns.inode)); !ok) return fail(ok.error());
        if (auto ok = remove_tree(group_pin_dir(netns.inode)); !ok) return fail(ok.error());
    }

    auto seed = random_seed();
    if (!seed) return fail(seed.error());
    auto program = SteerProgram::load(*seed, netns.cookie, options.max_services);
    if (!program) return fail(program.error());
    steer_bpf* skel = program->skeleton();

    std::string cgroup = options.cgroup;
    if (cgroup.empty()) {
        auto found = default_cgroup2();
        if (!found) return fail(found.error());
        cgroup = *found;
    }
    Fd cgroup_fd(::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cgroup_fd) return fail(system_error("open cgroup " + cgroup, errno));
    Fd netns_fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!netns_fd) return fail(system_error("open /proc/thread-self/ns/net", errno));

    std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)> steer_link(
        bpf_program__attach_netns(skel->progs.steer, netns_fd.get()), bpf_link__destroy);
    if (!steer_link) return fail(system_error("attach sk_lookup to the network namespace (needs Linux 5.9)", errno));
    std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)> sockops_link(
        bpf_program__attach_cgroup(skel->progs.register_and_count, cgroup_fd.get()), bpf_link__destroy);
    if (!sockops_link) return fail(system_error("attach sock_ops to cgroup " + cgroup, errno));

    const uint32_t zero = 0;
    const ts_meta meta{.abi_version = TS_ABI_VERSION};
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.meta), &zero, &meta, BPF_ANY) != 0)
        return fail(system_error("update map \"meta\"", errno));

    // Pin into a private directory and rename it into place, so a reader never sees half a
    // set of pins. bpffs refuses names with a dot, so the directory is not hidden.
    const std::string tmp = std::string(kPinRoot) + "/tmp-" + std::to_string(netns.inode) + "-" +
                            std::to_string(::getpid());
    (void)remove_tree(tmp);
    if (::mkdir(tmp.c_str(), 0700) != 0) return fail(system_error("mkdir " + tmp, errno));
    auto cleanup_tmp = [&] { (void)remove_tree(tmp); };
    for (const auto& [name, fd] : kDataplaneMaps) {
        const bpf_map* map = bpf_object__find_map_by_name(skel->obj, name);
        const int err = map ? bpf_obj_pin(bpf_map__fd(map), pin_path(tmp, name).c_str()) : -ENOENT;
        if (err != 0) {
            cleanup_tmp();
            return fail(system_error(std::string("pin map \"") + name + "\"", libbpf_errno(err)));
        }
    }
    if (bpf_obj_pin(bpf_link__fd(steer_link.get()), pin_path(tmp, kPinSteerLink).c_str()) != 0 ||
        bpf_obj_pin(bpf_link__fd(sockops_link.get()), pin_path(tmp, kPinSockopsLink).c_str()) != 0) {
        const int e = errno;
        cleanup_tmp();
        return fail(system_error("pin links", e));
    }
    if (::rename(tmp.c_str(), dir.c_str()) != 0) {
        const int e = errno;
        cleanup_tmp();
        return fail(system_error("rename " + tmp + " to " + dir, e));
    }
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
    (void)remove_tree(tmp);
    auto set = [gid](const std::string& path, mode_t mode) -> Result<void> {
        if (::chown(path.c_str(), 0, gid) != 0) return fail(system_error("chown " + path, errno));
        if (::chmod(path.c_str(), mode) != 0) return fail(system_error("chmod " + path, errno));
        return {};
    };
    auto pin_all = [&]() -> Result<void> {
        if (::mkdir(tmp.c_str(), 0700) != 0) return fail(system_error("mkdir " + tmp, errno));
        for (const auto& [name, fd] : kDataplaneMaps) {
            const std::string path = pin_path(tmp, name);
            if (bpf_obj_pin(((*maps).*fd).get(), path.c_str()) != 0) return fail(system_error("pin " + path, errno));
            if (auto ok = set(path, 0640); !ok) return ok;
        }
        if (auto ok = set(tmp, 0750); !ok) return ok;
        if (::rename(tmp.c_str(), dir.c_str()) != 0) return fail(system_error("rename " + tmp + " to " + dir, errno));
        return {};
    };
    auto pinned = pin_all();
    if (!pinned) (void)remove_tree(tmp);
    return pinned;
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
    const uint32_t zero = 0;
    ts_meta meta{};
    if (bpf_map_lookup_elem(maps.meta.get(), &zero, &meta) != 0)
        return fail(system_error("read map \"meta\"", errno));
    if (meta.abi_version != TS_ABI_VERSION)
        return fail(system_error(incompatible + " (ABI version " + std::to_string(meta.abi_version) + ", this one " +
                                 std::to_string(TS_ABI_VERSION) + ")"));
    return maps;
}

Result<uint64_t> applied_serial(const DataplaneMaps& maps) {
    const uint32_t zero = 0;
    ts_meta meta{};
    if (bpf_map_lookup_elem(maps.meta.get(), &zero, &meta) != 0) return fail(system_error("read map \"meta\"", errno));
    return meta.applied_serial;
}

Result<void> set_applied_serial(const DataplaneMaps& maps, uint64_t serial) {
    const uint32_t zero = 0;
    const ts_meta meta{.abi_version = TS_ABI_VERSION, .applied_serial = serial};
    return update(maps.meta, "meta", &zero, &meta);
}

Result<void> detach_dataplane(const NetnsId& netns) {
    const std::string dir = pin_dir(netns.inode);
    // Unlinking the link pins detaches the programs; with no fd left they are freed.
    if (auto ok = remove_tree(dir); !ok) return fail(ok.error());
    if (auto ok = remove_tree(group_pin_dir(netns.inode)); !ok) return fail(ok.error());
    return remove_tree(state_dir(netns.inode));
}

ListenerIds serving(uint32_t backend_id, const Endpoint& address) {
    ListenerIds ids = {TS_NO_BACKEND, TS_NO_BACKEND};
    ids[family_index(address.family)] = backend_id;
    return ids;
}

std::vector<std::pair<Endpoint, ListenerIds>> listener_keys(const Plan& plan) {
    constexpr ListenerIds kNone = {TS_NO_BACKEND, TS_NO_BACKEND};
    std::map<Endpoint, ListenerIds> exact;
    // wildcard key -> client family index -> backends that key could serve
    std::map<Endpoint, std::array<std::set<uint32_t>, 2>> wildcard;
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) {
                const size_t family = family_index(b.address.family);
                exact.emplace(b.address, kNone).first->second[family] = b.id;
                wildcard[Endpoint{.family = b.address.family, .port = b.address.port}][family].insert(b.id);
                if (b.address.family == AF_INET)
                    wildcard[Endpoint{.family = AF_INET6, .port = b.address.port}][0].insert(b.id);
            }
    std::vector<std::pair<Endpoint, ListenerIds>> keys(exact.begin(), exact.end());
    for (const auto& [ep, candidates] : wildcard) {
        if (exact.count(ep)) continue;
        ListenerIds ids = kNone;
        for (size_t family = 0; family < 2; ++family)
            if (candidates[family].size() == 1) ids[family] = *candidates[family].begin();
        if (ids != kNone) keys.emplace_back(ep, ids);
    }
    return keys;
}

namespace {

// Marks the ports of `frontends` in the bitmap. A reader that sees a half-copied bitmap
// sees every bit that the old and the new value share, so no live frontend is skipped.
Result<void> write_frontend_ports(const DataplaneMaps& maps, const std::set<Endpoint>& frontends) {
    ts_frontend_ports ports{};
    for (const auto& ep : frontends) ports.bits[ep.port / 32] |= 1u << (ep.port % 32);
    const uint32_t zero = 0;
    if (bpf_map_update_elem(maps.frontend_ports.get(), &zero, &ports, BPF_ANY) != 0)
        return fail(system_error("update map \"frontend_ports\"", errno));
    return {};
}

std::set<Endpoint> frontends_of(const Plan* plan) {
    std::set<Endpoint> out;
    if (plan)
        for (const auto& svc : plan->services) out.insert(svc.frontends.begin(), svc.frontends.end());
    return out;
}

}  // namespace

uint32_t backend_tag(const Endpoint& address) {
    __u64 h = ts_mix64(static_cast<__u64>(address.family) << 16 | address.port);
    for (uint32_t word : address.addr) h = ts_fold(h, word);
    // 0 is what an id that never had an address reads; a real address never tags as 0.
    return static_cast<uint32_t>(h >> 32) | 1;
}

namespace {

// Empties every member slot of a backend in the SOCKHASH.
Result<void> clear_sockets(const DataplaneMaps& maps, uint32_t backend_id) {
    for (uint32_t member = 0; member < TS_GROUP_SLOTS; ++member) {
        const uint32_t key = TS_SOCKET_KEY(backend_id, member);
        if (auto ok = remove(maps.sockets, "sockets", &key); !ok) return ok;
    }
    return {};
}

// The ids `next` gives to an address that `previous` did not give them to.
std::vector<std::pair<uint32_t, const PlanBackend*>> new_backend_ids(const Plan& next, const Plan* previous) {
    std::map<uint32_t, Endpoint> before;
    if (previous)
        for (const auto& svc : previous->services)
            for (const auto& subset : svc.subsets)
                for (const auto& b : subset.backends) before.emplace(b.id, b.address);
    std::map<uint32_t, const PlanBackend*> fresh;
    for (const auto& svc : next.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) {
                auto it = before.find(b.id);
                if (it == before.end() || it->second != b.address) fresh.emplace(b.id, &b);
            }
    return {fresh.begin(), fresh.end()};
}

}  // namespace

Result<void> install_listener_keys(const DataplaneMaps& maps, const Plan& next, const Plan* previous,
                                   const NetnsId& netns) {
    for (const auto& [id, backend] : new_backend_ids(next, previous)) {
        const ts_backend_tag tag{.tag = backend_tag(backend->address)};
        if (auto ok = update(maps.backend_tags, "backend_tags", &id, &tag); !ok) return ok;
        if (auto ok = clear_sockets(maps, id); !ok) return ok;
        if (auto ok = clear_percpu(maps.backend_stats, "backend_stats", id, sizeof(ts_backend_stats)); !ok) return ok;
    }
    for (const auto& [ep, ids] : listener_keys(next)) {
        const ts_listener_key key = listener_key(ep, netns.cookie);
        const ts_listener value{.backend_ids = {ids[0], ids[1]}};
        if (auto ok = update(maps.listeners, "listeners", &key, &value); !ok) return ok;
    }
    return {};
}

namespace {

bool tables_changed(const PlanService& svc, const PlanService* before) {
    if (!before || before->id != svc.id || before->affinity != svc.affinity) return true;
    for (size_t family = 0; family < svc.tables.size(); ++family)
        if (before->tables[family].slots != svc.tables[family].slots ||
            before->tables[family].weighted_backends != svc.tables[family].weighted_backends)
            return true;
    return false;
}

// Writes a service's tables into the spare generation and makes them live; sk_lookup keeps
// remembering its choices until `remember_until`.
Result<void> install_table(const DataplaneMaps& maps, const PlanService& svc, uint64_t remember_until) {
    ts_service current{};
    if (bpf_map_lookup_elem(maps.services.get(), &svc.id, &current) != 0)
        return fail(system_error("read map \"services\"", errno));
    const uint32_t spare = (current.generation & 1) ^ 1;
    auto table = std::make_unique<ts_table>();
    for (size_t family = 0; family < svc.tables.size(); ++family) {
        const FamilyTable& t = svc.tables[family];
        std::memset(table.get(), 0xff, sizeof(*table));
        table->affinity = svc.affinity == Affinity::kSourceIp ? TS_AFFINITY_SOURCE_IP : TS_AFFINITY_NONE;
        table->backend_count = static_cast<__u32>(t.weighted_backends.size());
        std::copy(t.weighted_backends.begin(), t.weighted_backends.end(), table->backends);
        std::copy(t.slots.begin(), t.slots.end(), table->slots);
        const uint32_t table_id = TS_TABLE_ID(svc.id, family, spare);
        if (auto ok = update(maps.tables, "tables", &table_id, table.get()); !ok) return ok;
    }
    const ts_service flipped{.generation = spare, .remember_until_ns = remember_until};
    return update(maps.services, "services", &svc.id, &flipped);
}

// With net.ipv4.tcp_syncookies=2 every handshake is a cookie one, and a final ACK may come
// long after its SYN: sk_lookup then remembers every flow, always.
bool cookies_always() {
    std::ifstream in("/proc/sys/net/ipv4/tcp_syncookies");  // the calling thread's namespace
    int mode = 1;
    return (in >> mode) && mode == 2;
}

constexpr uint64_t kRememberAlways = ~uint64_t{0};

// Before a live table is replaced, sk_lookup starts remembering each flow's backend, long
// enough before the flip for the SYNs it will have to honour (see ts_service).
Result<uint64_t> start_remembering(const DataplaneMaps& maps, const std::vector<const PlanService*>& replaced) {
    if (cookies_always()) return kRememberAlways;
    if (replaced.empty()) return uint64_t{0};
    const uint64_t until = monotonic_ns() + TS_REMEMBER_BEFORE_NS + TS_REMEMBER_AFTER_NS;
    for (const PlanService* svc : replaced) {
        ts_service current{};
        if (bpf_map_lookup_elem(maps.services.get(), &svc->id, &current) != 0)
            return fail(system_error("read map \"services\"", errno));
        current.remember_until_ns = until;
        if (auto ok = update(maps.services, "services", &svc->id, &current); !ok) return fail(ok.error());
    }
    std::this_thread::sleep_for(std::chrono::nanoseconds(TS_REMEMBER_BEFORE_NS));
    return until;
}

// Every (service, backend) pair of a plan: the keys of "route_stats".
std::set<std::pair<uint32_t, uint32_t>> routes_of(const Plan& plan) {
    std::set<std::pair<uint32_t, uint32_t>> routes;
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) routes.emplace(svc.id, b.id);
    return routes;
}

// Creates the zeroed counters of the routes `next` adds, before any table steers to them.
Result<void> add_routes(const DataplaneMaps& maps, const Plan& next, const Plan* previous) {
    const auto before = previous ? routes_of(*previous) : std::set<std::pair<uint32_t, uint32_t>>{};
    for (const auto& [service, backend] : routes_of(next)) {
        if (before.count({service, backend})) continue;
        const ts_route_key key{.service_id = service, .backend_id = backend};
        if (auto ok = clear_percpu(maps.route_stats, "route_stats", key, sizeof(ts_backend_stats)); !ok) return ok;
    }
    return {};
}

// Step 4 of install_plan: what `previous` had and `next` does not, in reverse order of use.
Result<void> remove_previous(const DataplaneMaps& maps, const Plan& next, const Plan& previous, const NetnsId& netns) {
    std::set<uint32_t> live_services;
    for (const auto& svc : next.services) live_services.insert(svc.id);
    for (const auto& svc : previous.services) {
        if (live_services.count(svc.id)) continue;
        if (auto ok = clear_percpu(maps.service_stats, "service_stats", svc.id, sizeof(ts_service_stats)); !ok)
            return ok;
    }
    // Listener keys before sockets, so a retired listener that listens again cannot register.
    std::set<Endpoint> kept;
    for (const auto& [ep, ids] : listener_keys(next)) kept.insert(ep);
    for (const auto& [ep, ids] : listener_keys(previous)) {
        if (kept.count(ep)) continue;
        const ts_listener_key key = listener_key(ep, netns.cookie);
        if (auto ok = remove(maps.listeners, "listeners", &key); !ok) return ok;
    }
    const auto kept_routes = routes_of(next);
    for (const auto& [service, backend] : routes_of(previous)) {
        if (kept_routes.count({service, backend})) continue;
        const ts_route_key key{.service_id = service, .backend_id = backend};
        if (auto ok = remove(maps.route_stats, "route_stats", &key); !ok) return ok;
    }
    std::set<uint32_t> next_backends;
    for (const auto& [name, id] : next.ids.backends) next_backends.insert(id);
    for (const auto& [name, id] : previous.ids.backends) {
        if (next_backends.count(id)) continue;
        if (auto ok = clear_sockets(maps, id); !ok) return ok;
        if (auto ok = clear_percpu(maps.backend_stats, "backend_stats", id, sizeof(ts_backend_stats)); !ok) return ok;
    }
    return {};
}

}  // namespace

Result<void> install_plan(const DataplaneMaps& maps, const Plan& next, const Plan* previous, const NetnsId& netns) {
    // 1. Tables: write the spare generation, then flip. The spare was live before the last
    // flip; a lookup that read the old generation may still be walking it, so wait for
    // running programs to finish before overwriting it. The counters of new routes first.
    if (auto ok = add_routes(maps, next, previous); !ok) return ok;
    if (auto ok = wait_for_running_programs(); !ok) return ok;
    std::map<std::string, const PlanService*> before_by_name;
    if (previous)
        for (const auto& s : previous->services) before_by_name.emplace(s.name, &s);
    std::vector<const PlanService*> changed, replaced;
    for (const auto& svc : next.services) {
        const auto found = before_by_name.find(svc.name);
        const PlanService* before = found == before_by_name.end() ? nullptr : found->second;
        if (!tables_changed(svc, before)) continue;  // stays live as it is: nothing to write
        changed.push_back(&svc);
        if (before && before->id == svc.id) replaced.push_back(&svc);
    }
    auto remember_until = start_remembering(maps, replaced);
    if (!remember_until) return fail(remember_until.error());
    for (const PlanService* svc : changed) {
        const bool was_live = std::find(replaced.begin(), replaced.end(), svc) != replaced.end();
        const uint64_t until = was_live || *remember_until == kRememberAlways ? *remember_until : 0;
        if (auto ok = install_table(maps, *svc, until); !ok) return ok;
    }

    // 2. Frontends, now that every table they point to is live. Their ports are marked
    // first, old and new together, so no frontend is ever behind a clear bit.
    const auto next_frontends = frontends_of(&next);
    auto previous_frontends = frontends_of(previous);
    auto both = next_frontends;
    both.insert(previous_frontends.begin(), previous_frontends.end());
    if (auto ok = write_frontend_ports(maps, both); !ok) return ok;
    for (const auto& svc : next.services) {
        for (const auto& ep : svc.frontends) {
            const ts_frontend_key key = frontend_key(ep);
            const ts_frontend value{.service_id = svc.id};
            if (auto ok = update(maps.frontends, "frontends", &key, &value); !ok) return ok;
        }
    }

    // 3. Removals, in reverse: frontends, then counters, then listeners and their sockets.
    for (const auto& ep : previous_frontends) {
        if (next_frontends.count(ep)) continue;
        const ts_frontend_key key = frontend_key(ep);
        if (auto ok = remove(maps.frontends, "frontends", &key); !ok) return ok;
    }
    if (auto ok = write_frontend_ports(maps, next_frontends); !ok) return ok;
    return previous ? remove_previous(maps, next, *previous, netns) : Result<void>{};
}

namespace {

// Every key of a hash map.
template <typename Key>
Result<std::vector<Key>> map_keys(const Fd& map, const char* name) {
    std::vector<Key> keys;
    Key key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(map.get(), prev, &next) == 0) {
        keys.push_back(next);
        key = next;
        prev = &key;
    }
    if (errno != ENOENT) return fail(system_error(std::string("iterate map \"") + name + "\"", errno));
    return keys;
}

Endpoint key_endpoint(__u32 family, __u32 port, const __u32 addr[4]) {
    Endpoint ep{.family = static_cast<int>(family), .port = static_cast<uint16_t>(port)};
    std::memcpy(ep.addr.data(), addr, sizeof(ep.addr));
    return ep;
}

}  // namespace

namespace {

using Diff = std::vector<std::string>;

Result<void> diff_frontends(const DataplaneMaps& maps, const Plan& plan, Diff& diff) {
    std::map<Endpoint, uint32_t> want;
    std::map<uint32_t, std::string> service_names;
    for (const auto& svc : plan.services) {
        service_names[svc.id] = svc.name;
        for (const auto& f : svc.frontends) want[f] = svc.id;
    }
    auto keys = map_keys<ts_frontend_key>(maps.frontends, "frontends");
    if (!keys) return fail(keys.error());
    std::set<Endpoint> seen;
    for (const auto& key : *keys) {
        const Endpoint ep = key_endpoint(key.family, key.port, key.addr);
        seen.insert(ep);
        ts_frontend value{};
        if (bpf_map_lookup_elem(maps.frontends.get(), &key, &value) != 0) continue;
        auto it = want.find(ep);
        if (it == want.end()) {
            diff.push_back("frontend " + ep.str() + " is installed but not configured");
        } else if (it->second != value.service_id) {
            diff.push_back("frontend " + ep.str() + " leads to service id " + std::to_string(value.service_id) +
                           ", configured: " + service_names[it->second] + " (id " + std::to_string(it->second) + ")");
        }
    }
    for (const auto& [ep, id] : want)
        if (!seen.count(ep)) diff.push_back("frontend " + ep.str() + " of service " + service_names[id] + " is missing");
    return {};
}

Result<void> diff_tables(const DataplaneMaps& maps, const Plan& plan, Diff& diff) {
    auto table = std::make_unique<ts_table>();
    for (const auto& svc : plan.services) {
        ts_service live{};
        if (bpf_map_lookup_elem(maps.services.get(), &svc.id, &live) != 0)
            return fail(system_error("read map \"services\"", errno));
        for (size_t family = 0; family < svc.tables.size(); ++family) {
            const FamilyTable& want = svc.tables[family];
            if (want.slots.empty()) continue;  // no frontend of this family
            const uint32_t table_id = TS_TABLE_ID(svc.id, family, live.generation & 1);
            if (bpf_map_lookup_elem(maps.tables.get(), &table_id, table.get()) != 0)
                return fail(system_error("read map \"tables\"", errno));
            const std::string prefix = "service " + svc.name + " (id " + std::to_string(svc.id) + "), " +
                                       (family ? "IPv6" : "IPv4") + " clients: ";
            const __u32 affinity = svc.affinity == Affinity::kSourceIp ? TS_AFFINITY_SOURCE_IP : TS_AFFINITY_NONE;
            if (table->affinity != affinity) diff.push_back(prefix + "live table has another affinity");
            if (table->backend_count != want.weighted_backends.size() ||
                !std::equal(want.weighted_backends.begin(), want.weighted_backends.end(), table->backends))
                diff.push_back(prefix + "live table has other weighted backends");
            size_t differing = 0;
            for (size_t i = 0; i < want.slots.size(); ++i) differing += table->slots[i] != want.slots[i];
            if (differing)
                diff.push_back(prefix + std::to_string(differing) + " of " + std::to_string(want.slots.size()) +
                               " slots differ from the configured weights");
        }
    }
    return {};
}

std::string ids_str(const ListenerIds& ids) {
    auto one = [](uint32_t id) { return id == TS_NO_BACKEND ? std::string("none") : std::to_string(id); };
    return "backend ids " + one(ids[0]) + " (IPv4 clients), " + one(ids[1]) + " (IPv6 clients)";
}

Result<void> diff_listeners(const DataplaneMaps& maps, const Plan& plan, const NetnsId& netns, Diff& diff) {
    std::map<Endpoint, ListenerIds> want;
    for (const auto& [ep, ids] : listener_keys(plan)) want[ep] = ids;
    auto keys = map_keys<ts_listener_key>(maps.listeners, "listeners");
    if (!keys) return fail(keys.error());
    std::set<Endpoint> seen;
    for (const auto& key : *keys) {
        if (key.netns_cookie != netns.cookie) continue;
        const Endpoint ep = key_endpoint(key.family, key.port, key.addr);
        seen.insert(ep);
        ts_listener value{};
        if (bpf_map_lookup_elem(maps.listeners.get(), &key, &value) != 0) continue;
        const ListenerIds ids = {value.backend_ids[0], value.backend_ids[1]};
        auto it = want.find(ep);
        if (it == want.end()) {
            diff.push_back("listener key " + ep.str() + " is registered but no backend listens there");
        } else if (it->second != ids) {
            diff.push_back("listener key " + ep.str() + " leads to " + ids_str(ids) + ", configured: " +
                           ids_str(it->second));
        }
    }
    for (const auto& [ep, ids] : want)
        if (!seen.count(ep)) diff.push_back("listener key " + ep.str() + " is missing");
    return {};
}

}  // namespace

Result<std::vector<std::string>> diff_dataplane(const DataplaneMaps& maps, const Plan& plan, const NetnsId& netns) {
    Diff diff;
    if (auto ok = diff_frontends(maps, plan, diff); !ok) return fail(ok.error());
    if (auto ok = diff_tables(maps, plan, diff); !ok) return fail(ok.error());
    if (auto ok = diff_listeners(maps, plan, netns, diff); !ok) return fail(ok.error());
    auto sockets = backend_sockets(maps, plan, netns);
    if (!sockets) return fail(sockets.error());
    for (const auto& [name, id] : plan.ids.backends)
        for (const auto& s : (*sockets)[id])
            if (!s.serves)
                diff.push_back("backend " + name + " (id " + std::to_string(id) + "): the SOCKHASH holds a " +
                               describe(s) + ", which does not serve " + name);
    return diff;
}

Result<std::vector<uint64_t>> backend_socket_cookies(const DataplaneMaps& maps, uint32_t backend_id) {
    std::vector<uint64_t> cookies;
    for (uint32_t member = 0; member < TS_GROUP_SLOTS; ++member) {
        const uint32_t key = TS_SOCKET_KEY(backend_id, member);
        uint64_t cookie = 0;
        if (bpf_map_lookup_elem(maps.sockets.get(), &key, &cookie) == 0) {
            cookies.push_back(cookie);
        } else if (errno != ENOENT) {
            return fail(system_error("read map \"sockets\"", errno));
        }
    }
    return cookies;
}

Result<std::map<uint32_t, std::vector<BackendSocket>>> backend_sockets(const DataplaneMaps& maps, const Plan& plan,
                                                                       const NetnsId& netns) {
    auto here = current_netns();
    if (!here) return fail(here.error());
    if (here->cookie != netns.cookie)
        return fail(system_error("list the backends' sockets: the caller is not in network namespace " +
                                 std::to_string(netns.inode)));
    auto listening = listening_sockets();
    if (!listening) return fail(listening.error());
    std::map<uint64_t, const ListeningSocket*> by_cookie;
    for (const auto& l : *listening) by_cookie.emplace(l.cookie, &l);
    std::map<uint32_t, std::vector<BackendSocket>> out;
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) {
                if (out.count(b.id)) continue;
                auto cookies = backend_socket_cookies(maps, b.id);
                if (!cookies) return fail(cookies.error());
                auto& sockets = out[b.id];
                for (uint64_t cookie : *cookies) {
                    BackendSocket s{.cookie = cookie};
                    if (auto it = by_cookie.find(cookie); it != by_cookie.end()) {
                        s.listening_on = it->second->local;
                        s.serves = listener_serves(*it->second, b.address);
                    }
                    sockets.push_back(s);
                }
            }
    return out;
}

Result<std::vector<uint32_t>> ready_backends(const DataplaneMaps& maps, const Plan& plan, const NetnsId& netns) {
    auto sockets = backend_sockets(maps, plan, netns);
    if (!sockets) return fail(sockets.error());
    std::vector<uint32_t> ready;
    for (const auto& [id, list] : *sockets)
        if (std::any_of(list.begin(), list.end(), [](const BackendSocket& s) { return s.serves; })) ready.push_back(id);
    return ready;
}

std::string describe(const BackendSocket& socket) {
    if (socket.listening_on) return "listener on " + socket.listening_on->str();
    return "socket " + std::to_string(socket.cookie) + " that listens nowhere in this namespace";
}

Result<void> register_listener(const DataplaneMaps& maps, const ListenerIds& ids, int socket_fd) {
    ts_connection storage{.backend_ids = {ids[0], ids[1]}, .tags = {0, 0}, .flags = TS_CONN_LISTENER};
    for (size_t family = 0; family < 2; ++family) {
        if (ids[family] == TS_NO_BACKEND) continue;
        ts_backend_tag tag{};
        if (bpf_map_lookup_elem(maps.backend_tags.get(), &ids[family], &tag) != 0)
            return fail(system_error("read map \"backend_tags\"", errno));
        storage.tags[family] = tag.tag;
    }
    const int fd = socket_fd;
    if (bpf_map_update_elem(maps.connections.get(), &fd, &storage, BPF_ANY) != 0)
        return fail(system_error("give a backend listener its storage in map \"connections\"", errno));
    const uint64_t sock = static_cast<uint64_t>(socket_fd);
    for (uint32_t id : ids) {
        if (id == TS_NO_BACKEND) continue;
        bool joined = false;
        for (uint32_t member = 0; member < TS_GROUP_SLOTS && !joined; ++member) {
            const uint32_t key = TS_SOCKET_KEY(id, member);
            joined = bpf_map_update_elem(maps.sockets.get(), &key, &sock, BPF_NOEXIST) == 0;
            if (!joined && errno != EEXIST)
                return fail(system_error("insert a listener of backend " + std::to_string(id) + " into map \"sockets\"",
                                         errno));
        }
        if (!joined)
            return fail(system_error("insert a listener of backend " + std::to_string(id) + " into map \"sockets\": all " +
                                     std::to_string(TS_GROUP_SLOTS) + " member slots are taken"));
    }
    return {};
}

Result<ServiceCounters> read_service_counters(const DataplaneMaps& maps, uint32_t service_id) {
    auto s = sum_percpu<ts_service_stats>(maps.service_stats, "service_stats", service_id);
    if (!s) return fail(s.error());
    return ServiceCounters{.lookups = s->lookups, .fallbacks = s->fallbacks, .no_backend = s->no_backend};
}

namespace {

BackendCounters backend_counters(const ts_backend_stats& b) {
    return BackendCounters{.steered = b.steered,
                           .opened = b.opened,
                           .closed = b.closed,
                           .bytes_sent = b.bytes_sent,
                           .bytes_received = b.bytes_received};
}

}  // namespace

Result<BackendCounters> read_route_counters(const DataplaneMaps& maps, uint32_t service_id, uint32_t backend_id) {
    const ts_route_key key{.service_id = service_id, .backend_id = backend_id};
    auto b = sum_percpu<ts_backend_stats>(maps.route_stats, "route_stats", key);
    if (!b) return fail(b.error());
    return backend_counters(*b);
}

Result<BackendCounters> read_backend_counters(const DataplaneMaps& maps, uint32_t backend_id) {
    auto b = sum_percpu<ts_backend_stats>(maps.backend_stats, "backend_stats", backend_id);
    if (!b) return fail(b.error());
    return backend_counters(*b);
}

}  // namespace tcpshift
