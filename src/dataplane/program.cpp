#include "dataplane/program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "steer_bpf.skel.h"
#include "bpf/abi.h"
#include "dataplane/map_access.h"

namespace tcpshift {

void SteerBpfDeleter::operator()(steer_bpf* skel) const { steer_bpf::destroy(skel); }

namespace {

Fd dup_fd(int fd) { return Fd(::fcntl(fd, F_DUPFD_CLOEXEC, 3)); }

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
        {"connect4/6 programs (Linux 4.17)", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, nullptr)},
        {"bpf_get_netns_cookie in connect4/6 programs (Linux 5.7)",
         libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_get_netns_cookie, nullptr)},
        {"bpf_sk_storage_get in connect4/6 and getpeername4/6 programs (Linux 5.8)",
         libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_sk_storage_get, nullptr)},
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
            bpf_map__set_max_entries(m.tables, max_services * TS_TABLE_FAMILIES) != 0 ||
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

}  // namespace tcpshift
