// tcpshift attach: load and pin the data plane, optionally sized and readable by a group.
#include <grp.h>
#include <sys/stat.h>

#include <cerrno>

#include <memory>
#include <optional>
#include <vector>

#include "apply/session.h"
#include "bpf/abi.h"
#include "cli/verbs.h"

namespace tcpshift {

namespace {

struct AttachCommand {
    TargetOptions target;
    std::string cgroup;
    std::string pin_group;  // a group that may read the maps; empty: root only
    uint32_t max_services = 0;
    std::vector<std::string> client_netns;  // connect-time steering serves only these
};

// The cookies of the client namespaces to serve; refuses a name that is no namespace.
Result<std::vector<uint64_t>> client_cookies(const std::vector<std::string>& specs) {
    std::vector<uint64_t> cookies;
    for (const auto& spec : specs) {
        auto id = netns_id(spec);
        if (!id) return fail(config_error("attach: --client-netns " + spec + ": " + id.error().message));
        cookies.push_back(id->cookie);
    }
    return cookies;
}

Result<void> grant_group(const NetnsId& netns, const std::string& name, gid_t gid, std::ostream& out) {
    if (auto ok = grant_pin_group(netns, gid); !ok) return ok;
    if (gid == 0) {
        out << "pins readable by root only\n";
    } else {
        out << "maps readable by group " << name << " in " << group_pin_dir(netns.inode)
            << " (read-only opens; the links stay root's)\n";
    }
    return {};
}

// An attached namespace keeps the cgroup it was attached to: a different --cgroup is refused.
Result<void> check_cgroup(bool attached_now, const std::string& cgroup, const NetnsId& netns) {
    if (attached_now || cgroup.empty()) return {};
    struct stat st {};
    if (::stat(cgroup.c_str(), &st) != 0) return fail(system_error("attach: --cgroup " + cgroup, errno));
    const CgroupAttachment held = cgroup_attachment(netns.inode);
    if (held.cgroup_id == st.st_ino) return {};
    return fail(config_error("attach: --cgroup " + cgroup + ": the namespace is already attached to another cgroup "
                             "(`tcpshift status --all` names it); detach and attach again to move it"));
}

Result<void> run_attach(const AttachCommand& cmd, Streams io) {
    auto dataplane = open_session("attach", cmd.target, Access::kPins, print_progress(io.err));
    if (!dataplane) return fail(dataplane.error());
    const NetnsId netns = dataplane->netns();
    std::optional<gid_t> gid;
    if (!cmd.pin_group.empty()) {
        const group* g = ::getgrnam(cmd.pin_group.c_str());
        if (!g) return fail(config_error("attach: --pin-group " + cmd.pin_group + ": no such group"));
        gid = g->gr_gid;
    }
    auto cookies = client_cookies(cmd.client_netns);
    if (!cookies) return fail(cookies.error());
    auto attached = dataplane->attach(
        AttachOptions{.cgroup = cmd.cgroup, .max_services = cmd.max_services, .client_netns = *cookies});
    if (!attached) return fail(attached.error());
    if (auto ok = check_cgroup(*attached, cmd.cgroup, netns); !ok) return ok;
    if (!*attached && !cmd.client_netns.empty())
        return fail(config_error("attach: --client-netns: the namespace is already attached, serving the client "
                                 "namespaces it was attached with; detach and attach again to change them"));
    auto limits = attached_limits(netns);
    if (!limits) return fail(limits.error());
    io.out << (*attached ? "attached" : "already attached") << " to network namespace " << netns.inode
           << ", pins in " << pin_dir(netns.inode) << ", room for " << limits->max_services << " services\n";
    if (!*attached && cmd.max_services != 0 && cmd.max_services != limits->max_services)
        return fail(config_error("attach: --max-services " + std::to_string(cmd.max_services) +
                                 ": the namespace is attached with room for " + std::to_string(limits->max_services) +
                                 "; maps cannot be resized in place, so detach and attach again"));
    if (gid) return grant_group(netns, cmd.pin_group, *gid, io.out);
    return {};
}

}  // namespace

Action add_attach(CLI::App& command) {
    auto cmd = std::make_shared<AttachCommand>();
    add_netns_option(command, cmd->target);
    command.add_option("--cgroup", cmd->cgroup,
                       "cgroup v2 directory for sock_ops and connect-time steering's connect4/6 and getpeername4/6 "
                       "programs: its processes are the clients connect-time steering serves (default: the "
                       "cgroup2 root, every process of the host)");
    command.add_option("--client-netns", cmd->client_netns,
                       "serve connect-time steering only to clients in this network namespace (a name under "
                       "/var/run/netns or a path); repeat for more (default: every namespace of the cgroup)");
    command
        .add_option("--max-services", cmd->max_services,
                    "size the maps for this many services (default " + std::to_string(TS_MAX_SERVICES) +
                        "; the weight tables take memory as services fill them, about 8 KiB for each client family a "
                        "service's frontends serve)")
        ->check(CLI::Range(1u, kMaxServicesCeiling))
        ->type_name("N");
    command
        .add_option("--pin-group", cmd->pin_group,
                    "let this group read the maps (a scraper, bpftool with read-only opens) at "
                    "/run/tcpshift/bpf/<netns inode>/, whatever the mode of /sys/fs/bpf; the links stay "
                    "root's. Runs on an attached namespace too; --pin-group root takes the access back")
        ->type_name("GROUP");
    return [cmd](Streams io) { return run_attach(*cmd, io); };
}

}  // namespace tcpshift
