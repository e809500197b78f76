#include "apply/session.h"

#include <unistd.h>

#include "apply/agent_lock.h"

namespace tcpshift {

namespace {

// The agent re-applies its own config at its next reload (a file change, SIGHUP, a restart),
// so a change made beside it lasts until then while its files say otherwise.
Result<void> check_agent(const std::string& verb, const NetnsId& netns, Access access, const Progress& progress) {
    auto agent = running_agent(agent_lock_path(netns.inode));
    if (!agent) return fail(agent.error());
    if (!*agent) return {};
    const std::string who = "the agent (" + (*agent)->str() + ")";
    if (access == Access::kConfig)
        return fail(system_error(verb + ": network namespace " + std::to_string(netns.inode) + " is kept by " + who +
                                 "; change its config, or pass --force to override it until its next reload"));
    progress(Event{Event::Kind::kWarning,
                   who + " restores its config at its next reload (a file change or SIGHUP)"});
    return {};
}

}  // namespace

Result<void> require_root(const std::string& verb, const std::string& how) {
    if (::geteuid() == 0) return {};
    return fail(system_error("tcpshift " + verb +
                             ": needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN to load and pin BPF programs); " +
                             how));
}

Result<Dataplane> open_session(const std::string& verb, const TargetOptions& target, Access access,
                               const Progress& progress) {
    if (auto ok = require_root(verb); !ok) return fail(ok.error());
    // The agent is asked before the lock is taken: a refusal should not wait for a writer.
    if (access == Access::kConfig || access == Access::kForcedConfig) {
        auto netns = enter_target(target);
        if (!netns) return fail(netns.error());
        if (auto ok = check_agent(verb, netns->netns, access, progress); !ok) return fail(ok.error());
    }
    return Dataplane::open(target.netns,
                           access == Access::kRead ? Dataplane::Access::kShared : Dataplane::Access::kExclusive);
}

}  // namespace tcpshift
