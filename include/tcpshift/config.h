// Configuration as data: the resources read from YAML, and the service specs they describe.
// Reading and validating are pure functions of their input; nothing here needs root.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tcpshift/endpoint.h"
#include "tcpshift/error.h"

namespace tcpshift {

// Where a value came from, for error messages and `explain`.
struct SourceRef {
    std::string file;  // a path, "-" for stdin, or "stored" for the applied set
    int line = 0;      // 1-based; 0 when unknown

    std::string str() const { return line > 0 ? file + ":" + std::to_string(line) : file; }
};

// One YAML document that names a kind: the unit that `apply` stores and replaces.
struct Resource {
    std::string api_version;
    std::string kind;
    std::string name;
    std::string ns;  // Kubernetes namespace; "default" unless the document or -n says otherwise
    SourceRef where;
    YAML::Node node;

    // "TrafficShift/default/tcp-echo": what `apply` replaces by.
    std::string key() const;
};

// Limits on what a file may hold, so hostile input fails fast.
inline constexpr size_t kMaxConfigBytes = 16u << 20;

// Reads every file named (a directory: its *.yaml, *.yml and *.json files, sorted), splits
// multi-document streams, and returns the documents that have a kind. `default_ns` fills
// metadata.namespace where a document names none. `notes` receives one line for each
// document that is skipped.
Result<std::vector<Resource>> load_resources(const std::vector<std::string>& paths, const std::string& default_ns,
                                             std::vector<std::string>* notes);
// The same, from text already in memory (tests, the stored set). `file` names it in errors.
Result<std::vector<Resource>> parse_resources(const std::string& text, const std::string& file,
                                              const std::string& default_ns, std::vector<std::string>* notes);

enum class Affinity { kNone, kSourceIp };

struct SubsetSpec {
    std::string name;
    uint32_t weight = 0;
    std::vector<Endpoint> backends;
    SourceRef where;         // the subset's entry
    SourceRef weight_where;  // where its weight was set
};

// One service: where clients connect, and how its subsets split the new connections.
struct ServiceSpec {
    std::string name;              // what `set`, `status` and `stats` call it
    std::vector<Endpoint> listen;  // frontends; a wildcard address takes every local address
    Affinity affinity = Affinity::kNone;
    bool takeover = false;  // steer a port where an unrelated process already listens
    std::vector<SubsetSpec> subsets;
    SourceRef where;
    std::string origin;  // the resource it came from, "TrafficShift/default/tcp-echo"
};

// Turns the resources tcpshift understands into services. Kinds it does not handle were
// already left out by load_resources.
Result<std::vector<ServiceSpec>> resolve_services(const std::vector<Resource>& resources);

// Validates the whole set: names, weights, frontends claimed twice.
Result<void> validate_services(const std::vector<ServiceSpec>& services);

std::string affinity_name(Affinity affinity);

}  // namespace tcpshift
