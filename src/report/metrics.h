// Prometheus text exposition of the data plane's counters, under Istio's metric names so
// existing dashboards work, and tcpshift's own.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "compile/plan.h"
#include "dataplane/maps.h"
#include "report/report.h"

namespace tcpshift {

// Reads every counter of a plan's services and backends from the pinned maps.
Result<StatsFacts> collect_stats(const DataplaneMaps& maps, const Plan& plan);

struct MetricsFacts {
    StatsFacts stats;
    // Backends that take new connections: a socket backend with a registered listener, a
    // connect-time one neither ejected nor down by the probe (BackendHealth::available()).
    std::set<uint32_t> ready;
    std::map<std::string, uint64_t> reloads;      // config reloads by result ("success", "error")
    std::map<uint32_t, uint64_t> ejections;       // times each backend was ejected, ever
};

// The text format (version 0.0.4):
//   istio_tcp_connections_opened_total, istio_tcp_connections_closed_total,
//   istio_tcp_sent_bytes_total, istio_tcp_received_bytes_total
//     {reporter, destination_service, destination_version, destination_workload}: reporter is
//     "destination" for a backend that listens in the namespace, "source" for a connect-time
//     one, counted at its clients
//   tcpshift_connect_rewrites_total{service}, tcpshift_connect_errors_total{service},
//   tcpshift_connect_ejected_draws_total{service},
//   tcpshift_spilled_total{service}, tcpshift_overflow_total{service},
//   tcpshift_lookups_total{service}, tcpshift_steered_total{service,subset},
//   tcpshift_fallback_total{service}, tcpshift_no_backend_total{service},
//   tcpshift_backend_ready{service,subset,backend}, tcpshift_weight{service,subset},
//   tcpshift_connections_active{service,subset,backend}, tcpshift_config_reloads_total{result},
//   tcpshift_backend_ejections_total{service,subset,backend},
//   tcpshift_connection_failures_total{service,subset,backend,reason}, tcpshift_retransmits_total,
//   tcpshift_connection_rtt_seconds and tcpshift_connection_duration_seconds (histograms)
std::string render_metrics(const Plan& plan, const MetricsFacts& facts);

}  // namespace tcpshift
