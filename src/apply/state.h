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
    std::string key;     // Resource::key()
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

StoredResource store_resource(const Resource& resource);
// Adds or replaces resources by key, keeping the order in which keys first appeared.
void merge_resources(AppliedState& state, const std::vector<Resource>& resources);
// Removes resources by key; returns how many were removed.
size_t remove_resources(AppliedState& state, const std::vector<std::string>& keys);
// Parses the stored documents back into resources.
Result<std::vector<Resource>> stored_resources(const AppliedState& state);

// An absent file is an empty state.
Result<AppliedState> load_state(uint64_t netns_inode);
// Written to a temporary file, synced, and renamed over the old one.
Result<void> save_state(uint64_t netns_inode, const AppliedState& state);

}  // namespace tcpshift
