#include "report/metrics.h"

#include <sstream>

#include "dataplane/backend_health.h"
#include "dataplane/counters.h"

namespace tcpshift {

Result<StatsFacts> collect_stats(const DataplaneMaps& maps, const Plan& plan) {
    StatsFacts facts;
    for (const auto& svc : plan.services) {
        auto counters = read_service_counters(maps, svc.id);
        if (!counters) return fail(counters.error());
        facts.services[svc.id] = *counters;
    }
    for (const auto& [name, id] : plan.ids.backends) {
        auto counters = read_backend_counters(maps, id);
        if (!counters) return fail(counters.error());
        facts.backends[id] = *counters;
    }
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) {
                auto counters = read_route_counters(maps, svc.id, b.id);
                if (!counters) return fail(counters.error());
                facts.routes[{svc.id, b.id}] = *counters;
            }
    for (const auto& [name, id] : plan.ids.backends) {
        auto sli = read_backend_sli(maps, id);
        if (!sli) return fail(sli.error());
        facts.sli[id] = *sli;
    }
    auto health = backend_health(maps, plan);
    if (!health) return fail(health.error());
    for (const auto& [id, h] : *health)
        facts.failures[id] = {.remote = h.remote, .before_data = h.failed, .listen_overflows = h.overflows};
    return facts;
}

namespace {

// A label value with \, " and newline escaped.
std::string quoted(const std::string& value) {
    std::string out = "\"";
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out + "\"";
}

using Labels = std::vector<std::pair<const char*, std::string>>;

// {a="x",b="y"}, or nothing for no labels.
std::string labels_text(const Labels& labels) {
    if (labels.empty()) return "";
    std::string out = "{";
    for (size_t i = 0; i < labels.size(); ++i)
        out += std::string(i ? "," : "") + labels[i].first + "=" + quoted(labels[i].second);
    return out + "}";
}

class Family {
   public:
    Family(std::ostream& out, const char* name, const char* type, const char* help) : out_(out), name_(name) {
        out_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    }
    template <typename Number>
    void sample(const Labels& labels, Number value, const char* suffix = "") {
        out_ << name_ << suffix << labels_text(labels) << " " << value << "\n";
    }

   private:
    std::ostream& out_;
    const char* name_;
};

Labels backend_labels(const PlanService& svc, const PlanSubset& subset, const PlanBackend& b) {
    return {{"service", svc.name}, {"subset", subset.name}, {"backend", b.address.str()}};
}

}  // namespace

namespace {

// One sample per (service, subset, backend), with Istio's destination labels: the
// connections that came through the service's frontends, as Istio counts at its proxy.
void render_istio_families(std::ostream& out, const Plan& plan, const StatsFacts& stats) {
    struct RouteFamily {
        const char* name;
        const char* help;
        uint64_t BackendCounters::*value;
    };
    const RouteFamily families[] = {
        {"istio_tcp_connections_opened_total", "TCP connections a backend accepted through the service.",
         &BackendCounters::opened},
        {"istio_tcp_connections_closed_total", "TCP connections through the service that a backend closed.",
         &BackendCounters::closed},
        {"istio_tcp_sent_bytes_total", "Payload bytes a backend sent, counted when the connection closes.",
         &BackendCounters::bytes_sent},
        {"istio_tcp_received_bytes_total", "Payload bytes a backend received, counted when the connection closes.",
         &BackendCounters::bytes_received},
    };
    for (const auto& [name, help, value] : families) {
        Family f(out, name, "counter", help);
        for (const auto& svc : plan.services)
            for (const auto& subset : svc.subsets)
                for (const auto& b : subset.backends)
                    // Istio's reporter: the side that counted. A backend that listens here
                    // is counted as it accepts; a connect-time one at its clients.
                    f.sample({{"reporter", b.remote ? "source" : "destination"},
                              {"destination_service", svc.name},
                              {"destination_version", subset.name},
                              {"destination_workload", b.address.str()}},
                             stats.route(svc.id, b.id).*value);
    }
}

// One sample per service of one of its counters.
void render_service_family(std::ostream& out, const Plan& plan, const StatsFacts& stats, const char* name,
                           const char* help, uint64_t ServiceCounters::*value) {
    Family f(out, name, "counter", help);
    for (const auto& svc : plan.services) f.sample({{"service", svc.name}}, stats.service(svc.id).*value);
}

void render_service_families(std::ostream& out, const Plan& plan, const StatsFacts& stats) {
    render_service_family(out, plan, stats, "tcpshift_lookups_total", "New connections to a service's frontends.",
                          &ServiceCounters::lookups);
    {
        Family f(out, "tcpshift_steered_total", "counter", "New connections handed to a subset's listeners.");
        for (const auto& svc : plan.services)
            for (const auto& subset : svc.subsets) {
                uint64_t steered = 0;
                for (const auto& b : subset.backends) steered += stats.route(svc.id, b.id).steered;
                f.sample({{"service", svc.name}, {"subset", subset.name}}, steered);
            }
    }
    render_service_family(out, plan, stats, "tcpshift_fallback_total",
                          "Connections whose chosen backend had no listener and went to another.",
                          &ServiceCounters::fallbacks);
    render_service_family(out, plan, stats, "tcpshift_no_backend_total",
                          "Connections refused: no backend had a listener.", &ServiceCounters::no_backend);
    render_service_family(out, plan, stats, "tcpshift_connect_rewrites_total",
                          "connect() calls to a frontend rewritten to a connect-time backend.",
                          &ServiceCounters::connects);
    render_service_family(out, plan, stats, "tcpshift_connect_errors_total",
                          "connect() calls to a frontend left unchanged on an internal error.",
                          &ServiceCounters::connect_errors);
    render_service_family(out, plan, stats, "tcpshift_connect_ejected_draws_total",
                          "connect() draws that found their backend ejected and drew again.",
                          &ServiceCounters::connect_ejected);
    render_service_family(out, plan, stats, "tcpshift_spilled_total",
                          "Connections whose chosen backend was at its maxConnections and went to another.",
                          &ServiceCounters::spills);
    render_service_family(out, plan, stats, "tcpshift_overflow_total",
                          "Connections refused: every backend was at its maxConnections.",
                          &ServiceCounters::overflows);
}

// One sample per (service, subset, backend) of a gauge.
template <typename Value>
void render_backend_gauge(std::ostream& out, const Plan& plan, const char* name, const char* help, Value value) {
    Family f(out, name, "gauge", help);
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends)
                f.sample({{"service", svc.name}, {"subset", subset.name}, {"backend", b.address.str()}},
                         value(svc, b));
}

void render_gauges(std::ostream& out, const Plan& plan, const MetricsFacts& facts) {
    render_backend_gauge(
        out, plan, "tcpshift_backend_ready",
        "1 when the backend takes new connections: its listener is registered and it is not ejected "
        "(socket), or it is neither ejected nor down by the probe (connect-time).",
        [&](const PlanService&, const PlanBackend& b) { return uint64_t{facts.ready.count(b.id) ? 1u : 0u}; });
    render_backend_gauge(
        out, plan, "tcpshift_connections_active", "Connections a backend accepted and has not closed.",
        [&](const PlanService& svc, const PlanBackend& b) { return facts.stats.route(svc.id, b.id).active(); });
    Family f(out, "tcpshift_weight", "gauge", "A subset's configured weight.");
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            f.sample({{"service", svc.name}, {"subset", subset.name}}, subset.weight);
}

void render_ejections(std::ostream& out, const Plan& plan, const std::map<uint32_t, uint64_t>& ejections) {
    Family f(out, "tcpshift_backend_ejections_total", "counter",
             "Times outlier detection ejected the backend (the kernel's count, kept per address).");
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) {
                auto it = ejections.find(b.id);
                f.sample({{"service", svc.name}, {"subset", subset.name}, {"backend", b.address.str()}},
                         it == ejections.end() ? 0 : it->second);
            }
}

// Each backend's failed connections by reason, exclusive: closed before any data within 1 s (a
// socket backend's early closes and resets; a connect-time backend's failed handshakes), SYNs
// dropped by its full listen queue, reset after the backend wrote, reset later having written
// nothing.
void render_failures(std::ostream& out, const Plan& plan, const StatsFacts& stats) {
    Family f(out, "tcpshift_connection_failures_total", "counter",
             "Failed connections to a backend through its service, by reason, each counted once "
             "(listen_overflow counts SYNs the kernel dropped; kept per address).");
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) {
                const BackendFailures failures = stats.backend_failures(b.id);
                const std::pair<const char*, uint64_t> reasons[] = {
                    {failures.remote ? "handshake_failed" : "closed_before_data", failures.before_data},
                    {"listen_overflow", failures.listen_overflows},
                    {"reset_after_data", stats.backend_sli(b.id).reset_after_data},
                    {"reset_without_data", stats.backend_sli(b.id).reset_without_data},
                };
                for (const auto& [reason, n] : reasons) {
                    Labels labels = backend_labels(svc, subset, b);
                    labels.emplace_back("reason", reason);
                    f.sample(labels, n);
                }
            }
}

// A histogram of backend_sli, in seconds: `unit` seconds per recorded unit.
void render_histogram(std::ostream& out, const Plan& plan, const StatsFacts& stats, const char* name, const char* help,
                      Histogram BackendSli::*histogram, uint64_t (*bound)(size_t), double unit) {
    Family f(out, name, "histogram", help);
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) {
                const BackendSli sli = stats.backend_sli(b.id);
                const Histogram& h = sli.*histogram;
                uint64_t cumulative = 0;
                for (size_t i = 0; i + 1 < h.buckets.size(); ++i) {
                    cumulative += h.buckets[i];
                    std::ostringstream le;
                    le.precision(12);
                    le << static_cast<double>(bound(i)) * unit;
                    Labels labels = backend_labels(svc, subset, b);
                    labels.emplace_back("le", le.str());
                    f.sample(labels, cumulative, "_bucket");
                }
                Labels labels = backend_labels(svc, subset, b);
                labels.emplace_back("le", "+Inf");
                f.sample(labels, h.count, "_bucket");
                f.sample(backend_labels(svc, subset, b), static_cast<double>(h.sum) * unit, "_sum");
                f.sample(backend_labels(svc, subset, b), h.count, "_count");
            }
}

// One counter of backend_sli per backend.
void render_sli_counter(std::ostream& out, const Plan& plan, const StatsFacts& stats, const char* name, const char* help,
                        uint64_t BackendSli::*counter) {
    Family f(out, name, "counter", help);
    for (const auto& svc : plan.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends) f.sample(backend_labels(svc, subset, b), stats.backend_sli(b.id).*counter);
}

void render_sli(std::ostream& out, const Plan& plan, const StatsFacts& stats) {
    render_failures(out, plan, stats);
    render_histogram(out, plan, stats, "tcpshift_connection_rtt_seconds",
                     "Smoothed RTT of a backend's connections, as each closed (tcp_info's srtt).", &BackendSli::rtt_us,
                     rtt_bound_us, 1e-6);
    render_histogram(out, plan, stats, "tcpshift_connection_duration_seconds",
                     "Lifetimes of a backend's connections, establishment to close.", &BackendSli::duration_us,
                     duration_bound_us, 1e-6);
    render_sli_counter(out, plan, stats, "tcpshift_retransmits_total",
                       "Segments retransmitted on a backend's connections, counted as each closed.",
                       &BackendSli::retransmits);
    render_sli_counter(out, plan, stats, "tcpshift_connections_unanswered_total",
                       "A backend's closed connections to which it wrote nothing, however they ended.",
                       &BackendSli::unanswered);
}

void render_reloads(std::ostream& out, const std::map<std::string, uint64_t>& reloads) {
    Family f(out, "tcpshift_config_reloads_total", "counter", "Configuration reloads by the agent, by result.");
    for (const char* result : {"success", "error"}) {
        auto it = reloads.find(result);
        f.sample({{"result", result}}, it == reloads.end() ? 0 : it->second);
    }
}

}  // namespace

std::string render_metrics(const Plan& plan, const MetricsFacts& facts) {
    std::ostringstream out;
    render_istio_families(out, plan, facts.stats);
    render_service_families(out, plan, facts.stats);
    render_gauges(out, plan, facts);
    render_ejections(out, plan, facts.ejections);
    render_sli(out, plan, facts.stats);
    render_reloads(out, facts.reloads);
    return out.str();
}

}  // namespace tcpshift
