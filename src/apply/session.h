// How a verb takes hold of a namespace: root, the namespace's Dataplane handle (shared for
// readers, exclusive for writers), and, for a change to what is applied, the namespace's
// agent, which restores its own config at its next reload.
#pragma once

#include <string>

#include "apply/target.h"
#include "apply/transaction.h"
#include "dataplane/handle.h"

namespace tcpshift {

enum class Access {
    kRead,          // shared
    kPins,          // exclusive: attach, pins
    kConfig,        // exclusive, and changes what is applied: refused beside the agent
    kForcedConfig,  // the same, beside the agent with a warning
};
inline Access config_access(bool force) { return force ? Access::kForcedConfig : Access::kConfig; }

// Fails, naming the verb, the capabilities and `how` to run it, unless the caller is root.
Result<void> require_root(const std::string& verb, const std::string& how = "run it with sudo");

Result<Dataplane> open_session(const std::string& verb, const TargetOptions& target, Access access,
                               const Progress& progress);

}  // namespace tcpshift
