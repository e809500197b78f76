// The verbs of the command line. Each verb's file adds its options to its subcommand, bound to
// a command struct of its own, and returns the action that runs the command once argv is
// parsed; cli.cpp lists the verbs in one table. Commands print results to io.out and progress
// to io.err, and return errors; only main() turns an error into an exit status.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <ostream>
#include <string>

#include "apply/target.h"
#include "apply/transaction.h"
#include "base/error.h"
#include "base/streams.h"
#include "compile/plan.h"

namespace tcpshift {

using Action = std::function<Result<void>(Streams)>;
using AddVerb = Action (*)(CLI::App& command);

Action add_attach(CLI::App& command);
Action add_apply(CLI::App& command);
Action add_delete(CLI::App& command);
Action add_get(CLI::App& command);
Action add_verify(CLI::App& command);
Action add_set(CLI::App& command);
Action add_rebalance(CLI::App& command);
Action add_rollout(CLI::App& command);
Action add_status(CLI::App& command);
Action add_prune(CLI::App& command);
Action add_stats(CLI::App& command);
Action add_explain(CLI::App& command);
Action add_detach(CLI::App& command);
Action add_agent(CLI::App& command);
Action add_version(CLI::App& command);

// Options and output the verbs share.
void add_netns_option(CLI::App& command, TargetOptions& target);
// For the verbs that change what is applied, which refuse beside the namespace's agent.
void add_force_option(CLI::App& command, bool& force);
void add_namespace_option(CLI::App& command, std::string& ns, const char* what);
void add_json_flag(CLI::App& command, bool& json);
// Progress of a transaction as lines on `err`: "note: ...", "warning: ...", or the step.
Progress print_progress(std::ostream& err);
// One line per service: its subsets and their shares.
void print_applied(const Plan& plan, std::ostream& out);

}  // namespace tcpshift
