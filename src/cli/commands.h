// The CLI as a table of commands. Each command is a function of its options and output
// streams, so tests run it in-process; only main() turns results into exit codes.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "apply/target.h"
#include "base/error.h"
#include "base/streams.h"

namespace tcpshift {


struct AttachCommand {
    TargetOptions target;
    std::string cgroup;
    std::string pin_group;  // a group that may read the maps; empty: root only
    uint32_t max_services = 0;
};
// The state-changing verbs refuse to work beside the namespace's agent, which would restore
// its own config at its next reload while its files say otherwise; `force` changes the data
// plane anyway, until then (an emergency shift), with a warning.
struct ApplyCommand {
    TargetOptions target;
    std::vector<std::string> files;
    std::string ns = "default";
    bool dry_run = false;
    bool strict = false;  // fields tcpshift cannot honour are errors, not warnings
    bool force = false;   // beside an agent
};
struct DeleteCommand {
    TargetOptions target;
    std::vector<std::string> files;  // delete what these files define ...
    std::string kind;                // ... or KIND NAME
    std::string name;
    std::string ns = "default";
    bool force = false;  // beside an agent
};
struct GetCommand {
    TargetOptions target;
    std::string kind;  // empty: every kind
    bool json = false;
};
struct VerifyCommand {
    TargetOptions target;
    std::vector<std::string> files;  // empty: the applied set
    std::string ns = "default";
    bool json = false;
};
struct SetCommand {
    TargetOptions target;
    std::string service;
    std::vector<std::string> weights;  // SUBSET=WEIGHT
    bool force = false;                // beside an agent
};
struct DetachCommand {
    TargetOptions target;
    bool force = false;  // beside an agent
};
struct ShowCommand {
    TargetOptions target;
    bool json = false;
    bool all = false;  // status: every attached namespace of the host, not one
};
struct ExplainCommand {
    std::vector<std::string> files;
    std::string ns = "default";
    bool json = false;
    bool strict = false;
};

Result<void> run_attach(const AttachCommand& cmd, Streams io);
Result<void> run_apply(const ApplyCommand& cmd, Streams io);
Result<void> run_delete(const DeleteCommand& cmd, Streams io);
Result<void> run_get(const GetCommand& cmd, Streams io);
Result<void> run_set(const SetCommand& cmd, Streams io);
// Exits 1 (kSystem) when the pinned state differs from the configuration: the applied set
// (or the files given), and the config of the namespace's agent when one runs.
Result<void> run_verify(const VerifyCommand& cmd, Streams io);
Result<void> run_status(const ShowCommand& cmd, Streams io);
Result<void> run_stats(const ShowCommand& cmd, Streams io);
Result<void> run_explain(const ExplainCommand& cmd, Streams io);
Result<void> run_detach(const DetachCommand& cmd, Streams io);
// Removes what namespaces deleted without `detach` left behind.
Result<void> run_prune(const ShowCommand& cmd, Streams io);

// Parses argv and runs the command; returns the exit status (0, 1 or 2) after printing any
// error as one line on io.err.
int run_cli(int argc, const char* const* argv, Streams io);

}  // namespace tcpshift
