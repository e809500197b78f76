// What a rollout reads of its service and how it installs a step: the same for the CLI and the
// agent, which differ only in how they hold the namespace.
#pragma once

#include <map>
#include <string>

#include "apply/transaction.h"
#include "dataplane/handle.h"
#include "rollout/runner.h"

namespace tcpshift {

// The service's figures and weights as the namespace `netns` (as Dataplane::open takes it)
// holds them now, read without the pin lock.
Result<Reading> read_service(const std::string& netns, const std::string& service);
// Installs `weights` for the service through the transaction, on an exclusive handle.
Result<void> install_weights(Dataplane& dataplane, const std::string& service,
                             const std::map<std::string, uint32_t>& weights, const Progress& progress);

}  // namespace tcpshift
