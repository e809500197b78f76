// Listening sockets of the current network namespace: who owns them, adopting the ones that
// are backends, and refusing frontends that would take a port from an unrelated process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "base/endpoint.h"
#include "base/error.h"
#include "compile/plan.h"
#include "dataplane/maps.h"
#include "dataplane/sock_diag.h"

namespace tcpshift {

struct SocketOwner {
    pid_t pid = 0;
    int fd = -1;
    std::string command;  // /proc/PID/comm
};

// Finds a process and fd for each socket inode, by scanning /proc/*/fd.
std::map<uint64_t, SocketOwner> socket_owners(const std::set<uint64_t>& inodes);

// Puts every backend listener that is already listening, and is not yet registered, into the
// SOCKHASH: its fd is taken from its process with pidfd_getfd. Returns how many it adopted,
// and says from which process each came in `adopted_from`.
Result<size_t> adopt_listeners(const DataplaneMaps& maps, const Plan& plan,
                               std::vector<std::string>* adopted_from = nullptr);

// Fails, naming the process, when a frontend of a service without `takeover: true` is a port
// where a process that is not one of the plan's backends already listens.
Result<void> check_frontend_conflicts(const Plan& plan);

}  // namespace tcpshift
