// One agent per network namespace. The agent holds an exclusive flock on
// /run/tcpshift/<netns inode>/agent.lock for as long as it runs; the file says who holds it
// (pid) and what it keeps applied (its config paths and namespace), so a second agent, the
// CLI's writers and `verify` can name it. The kernel drops the lock when the agent dies, so
// a crashed agent leaves no claim behind.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace tcpshift {

// What the agent of a namespace writes into its lock file.
struct AgentClaim {
    pid_t pid = 0;                    // 0 when the file could not be read
    std::vector<std::string> config;  // --config, as absolute paths
    std::string ns = "default";       // -n: the namespace of documents that name none
    bool strict = false;

    // "pid 1234, config /etc/tcpshift"
    std::string str() const;
};

// /run/tcpshift/<netns inode>/agent.lock
std::string agent_lock_path(uint64_t netns_inode);

class AgentLock {
   public:
    // Takes the lock at `path` (creating the file and its directory) and writes `claim` into
    // it. Fails, naming the agent that holds it, when another agent does.
    static Result<AgentLock> acquire(const std::string& path, const AgentClaim& claim);

    // The file can be removed under a running agent (`detach --force`, the state of a gone
    // namespace whose inode was reused); a lock on a removed file stops nobody, so this takes
    // it again on a new file. Fails when another agent took it in between.
    Result<void> keep();

   private:
    std::string path_;
    AgentClaim claim_;
    Fd fd_;
};

// The agent holding the lock at `path`, or nothing when none runs.
Result<std::optional<AgentClaim>> running_agent(const std::string& path);

}  // namespace tcpshift
