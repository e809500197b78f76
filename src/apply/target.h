// The network namespace a command works on: named by the user, entered for the command's
// lifetime, and identified by its inode.
#pragma once

#include <string>

#include "base/error.h"
#include "base/netns.h"

namespace tcpshift {

struct TargetOptions {
    std::string netns;  // name under /var/run/netns, or a path; empty: the caller's namespace
};

// The namespace a command works on, entered for the command's lifetime.
struct Target {
    ScopedNetns scope;
    NetnsId netns;
};
Result<Target> enter_target(const TargetOptions& options);

}  // namespace tcpshift
