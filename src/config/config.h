// Configuration as data: the resources read from YAML, and the service specs they describe.
// Reading and validating are pure functions of their input; nothing here needs root. The
// parsers of each kind build on this header, and resolve.h on them: it turns resources into
// services.
//
// Accepted kinds:
//   tcpshift.io/v1alpha1                      TrafficShift
//   networking.istio.io/{v1alpha3,v1beta1,v1} Gateway, VirtualService, DestinationRule,
//                                             ServiceEntry, WorkloadEntry
//   v1                                        Service
//   gateway.networking.k8s.io/{v1,v1beta1,v1alpha2}  Gateway; TCPRoute (v1alpha2, v1alpha3)
// Any other kind is skipped with a note, so a sample file can be given whole.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/endpoint.h"
#include "base/error.h"
#include "config/resource_key.h"

namespace tcpshift {

// Where a value came from, for error messages and `explain`.
struct SourceRef {
    std::string file;  // a path, "-" for stdin, or "applied KEY (from SOURCE)" for the stored set
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

    // "networking.istio.io" for "networking.istio.io/v1"; "" for the core group ("v1").
    std::string group() const;
    // What `apply` replaces by: VirtualService.networking.istio.io/default/tcp-echo.
    ResourceKey key() const;
};

// Limits on what a file may hold, so hostile input fails fast.
inline constexpr size_t kMaxConfigBytes = 16u << 20;

// Notes, warnings and the --strict switch, collected while reading and resolving.
struct Diagnostics {
    bool strict = false;                // a warning is an error
    std::vector<std::string> notes;     // documents skipped
    std::vector<std::string> warnings;  // fields tcpshift cannot honour

    // Records a warning, or with `strict` returns it as an error.
    Result<void> warn(std::string message);
};

// Whether a directory entry of this name is a config file: *.yaml, *.yml or *.json, and not a
// name that starts with "..", which Kubernetes' atomic writer keeps for itself (..data, the
// timestamped directories behind it): a mounted ConfigMap's files are read once, through
// their own names.
bool is_config_file_name(const std::string& name);

// Reads every file named (a directory: its config files, sorted), splits multi-document
// streams, and returns the documents of the accepted kinds. `default_ns` fills
// metadata.namespace where a document names none. Files count in the order named, as
// kubectl apply applies them: a resource that a later file defines again replaces the
// earlier definition in its place, with a note naming both; one defined twice in one file is
// an error.
Result<std::vector<Resource>> load_resources(const std::vector<std::string>& paths, const std::string& default_ns,
                                             Diagnostics* diagnostics);
// The same, from text already in memory (tests, the stored set). `file` names it in errors.
// Text from outside is walked first for aliases, depth and size (a hostile file fails fast);
// kTrusted skips that walk for what tcpshift itself emitted from text that passed it (the
// stored set, about a seventh of reading it back).
enum class Origin { kOutside, kTrusted };
Result<std::vector<Resource>> parse_resources(const std::string& text, const std::string& file,
                                              const std::string& default_ns, Diagnostics* diagnostics,
                                              Origin origin = Origin::kOutside);

enum class Affinity { kNone, kSourceIp };

struct SubsetSpec {
    std::string name;
    uint32_t weight = 0;
    std::vector<Endpoint> backends;
    SourceRef where;         // the subset's entry
    SourceRef weight_where;  // where its weight was set
    std::vector<SourceRef> backend_where;  // parallel to backends, when known
    // Path of the weight field inside the origin resource ("spec", "tcp", "0", "route", "1",
    // "weight"): what `tcpshift set` rewrites.
    std::vector<std::string> weight_path;
};

// When a backend is ejected after failed connections: Istio's outlierDetection, with Envoy's
// defaults. A connect-time backend is judged by its handshakes, always. A socket backend (a
// listener here) only when the block is written, as in Istio: by its steered connections that
// it closes or resets early having written nothing. Read from a TrafficShift's
// spec.outlierDetection or the top-level trafficPolicy of the DestinationRule of a route's
// hosts; it holds for every backend of the service.
struct OutlierPolicy {
    uint32_t consecutive_errors = 5;      // failed connections in a row that eject; 0: never eject
    uint64_t base_ejection_ms = 30000;    // baseEjectionTime; each ejection in a row lasts one more
    // maxEjectionPercent: Istio's 10 once the block is written; with no block (connect-time
    // backends' defaults), any number. The first ejection of a service is always allowed.
    uint32_t max_ejection_percent = 100;
    // minHealthPercent: while fewer of the service's backends than this share are available,
    // ejections are ignored and every backend takes its weight (Envoy's panic mode). 0: never,
    // Istio's default.
    uint32_t min_health_percent = 0;
    SourceRef where;                      // the outlierDetection block; none: the defaults

    bool written() const { return !where.file.empty(); }

    bool operator==(const OutlierPolicy& other) const {
        return consecutive_errors == other.consecutive_errors && base_ejection_ms == other.base_ejection_ms &&
               max_ejection_percent == other.max_ejection_percent && min_health_percent == other.min_health_percent;
    }
};
// The bounds of baseEjectionTime: Istio's floor, and a ceiling that keeps ten ejections in a
// row (TS_MAX_EJECTION_FACTOR) within the kernel's clock arithmetic with room to spare.
inline constexpr uint64_t kMinBaseEjectionMs = 1;
// Istio's maxEjectionPercent when an outlierDetection block leaves it out.
inline constexpr uint32_t kDefaultMaxEjectionPercent = 10;
inline constexpr uint64_t kMaxBaseEjectionMs = 24ull * 3600 * 1000;

// How a service's new connections draw from its weights: Istio's loadBalancer.simple, or a
// consistent hash. In every mode the subsets split by weight.
enum class Balance {
    kHash,        // a seeded hash of the 4-tuple (or of the source address: Affinity) picks a slot
    kRandom,      // RANDOM: a random draw for each connection
    kRoundRobin,  // ROUND_ROBIN: a smooth weighted round robin, exact over each cycle
    kLeastConn,   // LEAST_CONN, LEAST_REQUEST: two choices in a subset, the fewer active connections
};
std::string balance_name(Balance balance);

// loadBalancer.warmup (or warmupDurationSecs): a backend that becomes ready (its listener
// starts, or the agent's probe finds it back) takes, for `duration_ms`, its weight scaled by
// Envoy's slow-start factor max(min_percent / 100, (t / duration)^(1 / aggression)), with t at
// least a second. The kernel draws again when the factor turns a connection away, so the
// backend's share follows the scaled weight. duration_ms 0: none.
struct WarmupPolicy {
    uint64_t duration_ms = 0;
    double min_percent = 10;  // Istio's default
    double aggression = 1;    // 1: linear
    SourceRef where;          // the warmup block or warmupDurationSecs line

    bool operator==(const WarmupPolicy& other) const {
        return duration_ms == other.duration_ms && min_percent == other.min_percent &&
               aggression == other.aggression;
    }
    // The factor, in (0, 1], of a backend ready for `age_ms`.
    double factor(uint64_t age_ms) const;
};
// The bounds of a warmup duration, and of aggression (Envoy requires it positive).
inline constexpr uint64_t kMinWarmupMs = 1000;
inline constexpr uint64_t kMaxWarmupMs = 3600ull * 1000;
inline constexpr double kMinAggression = 0.01;
inline constexpr double kMaxAggression = 100;

struct BalancePolicy {
    Balance mode = Balance::kHash;
    // Slots of a hashing table (consistentHash.maglev.tableSize, a prime); 0: the map's size,
    // TS_TABLE_SLOTS. Fewer slots round the shares more coarsely.
    uint32_t table_size = 0;
    WarmupPolicy warmup;
    SourceRef where;  // the loadBalancer block; none: the default

    bool operator==(const BalancePolicy& other) const {
        return mode == other.mode && table_size == other.table_size && warmup == other.warmup;
    }
};

// The slots of a kernel weight table (TS_TABLE_SLOTS; the compiler asserts they agree): the
// largest table size a policy may ask for.
inline constexpr uint32_t kMaxTableSlots = 4093;

// TCP keepalive on every connection of the service: connectionPool.tcp.tcpKeepalive. A
// setting of 0 keeps the kernel's (net.ipv4.tcp_keepalive_*).
struct KeepalivePolicy {
    bool enabled = false;
    uint32_t time_s = 0;      // idle seconds before the first probe
    uint32_t interval_s = 0;  // seconds between probes
    uint32_t probes = 0;      // unanswered probes before the connection is dropped
    SourceRef where;          // the tcpKeepalive block

    bool operator==(const KeepalivePolicy& other) const {
        return enabled == other.enabled && time_s == other.time_s && interval_s == other.interval_s &&
               probes == other.probes;
    }
};
// connectionPool.tcp.maxConnections: the connections each backend of the service may hold,
// established or in the handshake; at the cap a new connection goes to another backend by
// weight, and with every backend at its cap it is refused. 0: no cap.
struct ConnectionCap {
    uint32_t max_connections = 0;
    SourceRef where;  // the maxConnections line

    bool operator==(const ConnectionCap& other) const { return max_connections == other.max_connections; }
};

// The kernel's bounds (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT).
inline constexpr uint32_t kMaxKeepaliveSeconds = 32767;
inline constexpr uint32_t kMaxKeepaliveProbes = 127;

// How long a connection of the service may stay open: connectionPool.tcp.maxConnectionDuration
// and idleTimeout. The agent sweeps the service's connections every 250 ms and aborts (RST,
// not FIN: the kernel's socket destroy) each one older than max_duration_ms, or with no
// payload received or sent for idle_timeout_ms; each limit is stretched by a per-connection
// jitter of up to kLifetimeJitterPercent, so that clients do not reconnect in one storm.
// 0: no limit.
struct LifetimePolicy {
    uint64_t max_duration_ms = 0;
    uint64_t idle_timeout_ms = 0;
    SourceRef where;           // the connectionPool.tcp block
    SourceRef duration_where;  // maxConnectionDuration
    SourceRef idle_where;      // idleTimeout

    bool any() const { return max_duration_ms || idle_timeout_ms; }
    bool operator==(const LifetimePolicy& other) const {
        return max_duration_ms == other.max_duration_ms && idle_timeout_ms == other.idle_timeout_ms;
    }
};
inline constexpr uint32_t kLifetimeJitterPercent = 10;
// The bounds of either limit: Istio's floor of a millisecond; duration.h's 100 days above.
inline constexpr uint64_t kMinLifetimeMs = 1;
inline constexpr uint64_t kMaxLifetimeMs = 100ull * 24 * 3600 * 1000;

// Whether `tcpshift set` closes the excess connections of a service after it shifts its
// weights (TrafficShift spec.rebalance, or the annotation tcpshift.io/rebalance on a
// VirtualService: "true" or "rate=N,max=K"): what `tcpshift rebalance` does, at `rate` connections a second, at most
// `max` in all (0: no cap).
struct RebalancePolicy {
    bool enabled = false;
    uint32_t rate = 50;
    uint32_t max = 0;
    SourceRef where;

    bool operator==(const RebalancePolicy& other) const {
        return enabled == other.enabled && rate == other.rate && max == other.max;
    }
};
inline constexpr uint32_t kMaxRebalanceRate = 100000;

// One service: where clients connect, and how its subsets split the new connections.

struct ServiceSpec {
    std::string name;              // what `set`, `status` and `stats` call it
    std::vector<Endpoint> listen;  // frontends; a wildcard address takes every local address
    std::vector<SourceRef> listen_where;  // parallel to listen, when known
    Affinity affinity = Affinity::kNone;
    SourceRef affinity_where;
    bool takeover = false;  // steer a port where an unrelated process already listens
    std::vector<SubsetSpec> subsets;
    SourceRef where;
    ResourceKey origin;  // the resource whose weights these are
    // Virtual IPs among the frontends that must be made local (a `local` route) for
    // sk_lookup to see connections to them: the mesh form of Istio.
    std::vector<Endpoint> local_addresses;
    OutlierPolicy outlier;
    BalancePolicy balance;
    KeepalivePolicy keepalive;
    ConnectionCap cap;
    LifetimePolicy lifetime;
    RebalancePolicy rebalance;
};

std::string affinity_name(Affinity affinity);

// Names of resources and subsets must be DNS-1123 subdomains, as Kubernetes requires; a
// hostile name (control characters, megabytes) is refused before it reaches a message.
Result<void> check_name(const std::string& name, const std::string& where, const std::string& field);

}  // namespace tcpshift
