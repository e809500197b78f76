// The applied set of one network namespace, kept beside its pins as kubectl keeps the
// last-applied configuration: resources keyed by kind, namespace and name, and the ids the
// data plane uses for services and backends.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "base/error.h"
#include "compile/plan.h"

namespace tcpshift {

struct StoredResource {
    ResourceKey key;
    std::string source;  // where it was applied from, "tcp-echo.yaml:3"
    std::string yaml;    // the document, re-emitted
};

struct AppliedState {
    std::vector<StoredResource> resources;
    IdAssignment ids;
    std::vector<Endpoint> local_routes;  // virtual IPs whose local route tcpshift added
    // Counts the applied sets of the namespace; the pinned "meta" map holds the serial of the
    // set the maps hold, so a lost or stale file is noticed before ids are handed out again.
    uint64_t serial = 0;
};

// Parses the stored documents back into resources; errors cite "applied KEY (from SOURCE)".
Result<std::vector<Resource>> stored_resources(const AppliedState& state);

// The next applied set, made from the one before: `state` is what will be stored and
// `resources` what will be compiled, in the form whose errors cite where each was read
// (a file:line for what this change brings, the applied set for the rest).
struct NextSet {
    AppliedState state;
    std::vector<Resource> resources;
    bool changed = true;  // false: the edit found nothing to change
    std::vector<ResourceKey> unchanged;  // incoming documents the set already held as they are
};
// An applied set whose documents were parsed already: resources[i] is state.resources[i] read
// back, so an edit parses nothing it does not change.
struct ParsedSet {
    const AppliedState& state;
    const std::vector<Resource>& resources;
};
// Adds `incoming`, each replacing the stored resource of its key in place. `source` names
// where they came from when not their file ("tcpshift set").
Result<NextSet> with_resources(const ParsedSet& applied, const std::vector<Resource>& incoming,
                               const std::string& source = "");
// Removes the resources of `keys`.
Result<NextSet> without_resources(const ParsedSet& applied, const std::vector<ResourceKey>& keys);
// The same for a set not parsed yet.
Result<NextSet> with_resources(const AppliedState& applied, const std::vector<Resource>& incoming,
                               const std::string& source = "");
Result<NextSet> without_resources(const AppliedState& applied, const std::vector<ResourceKey>& keys);
// Exactly `resources` (the agent's whole set); the ids and local routes carry over.
NextSet only_resources(const AppliedState& applied, std::vector<Resource> resources);

// Where the applied set of a namespace is kept.
std::string state_file(uint64_t netns_inode);
// The applied set of a namespace, kept in state_file(): an absent file is an empty state.
Result<AppliedState> load_state(uint64_t netns_inode);
// The serial of the applied set in state_file(), read without the documents (0 when the file is
// absent or names none).
Result<uint64_t> load_state_serial(uint64_t netns_inode);
// Written to a temporary file, synced, and renamed over the old one.
Result<void> save_state(uint64_t netns_inode, const AppliedState& state);
// The same in another directory (tests).
inline constexpr const char* kStateFileName = "applied.json";
Result<AppliedState> load_state_at(const std::string& dir);
Result<void> save_state_at(const std::string& dir, const AppliedState& state);

}  // namespace tcpshift
