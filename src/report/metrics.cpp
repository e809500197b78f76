#include "report/metrics.h"

#include <sstream>

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

class Family {
   public:
    Family(std::ostream& out, const char* name, const char* type, const char* help) : out_(out), name_(name) {
        out_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    }
    void sample(const std::vector<std::pair<const char*, std::string>>& labels, uint64_t value) {
        out_ << name_;
        if (!labels.empty()) {
            out_ << "{";
            for (size_t i = 0; i < labels.size(); ++i)
                out_ << (i ? "," : "") << labels[i].first << "=" << quoted(labels[i].second);
            out_ << "}";
        }
        out_ << " " << value << "\n";
    }

   private:
    std::ostream& out_;
    const char* name_;
};

}  // namespace

std::string render_metrics(const Plan& plan, const MetricsFacts& facts) {
    std::ostringstream out;
    auto service = [&](uint32_t id) {
        auto it = facts.stats.services.find(id);
        return it == facts.stats.services.end() ? ServiceCounters{} : it->second;
    };
    // One sample per (service, subset, backend), with Istio's destination labels: the
    // connections that came through the service's frontends, as Istio counts at its proxy.
    auto per_backend = [&](Family& family, auto value) {
        for (const auto& svc : plan.services)
            for (const auto& subset : svc.subsets)
                for (const auto& b : subset.backends)
                    family.sample({{"reporter", "destination"},
                                   {"destination_service", svc.name},
                                   {"destination_version", subset.name},
                                   {"destination_workload", b.address.str()}},
                                  value(facts.stats.route(svc.id, b.id)));
    };
    {
        Family f(out, "istio_tcp_connections_opened_total", "counter", "TCP connections a backend accepted through the service.");
        per_backend(f, [](const BackendCounters& c) { return c.opened; });
    }
    {
        Family f(out, "istio_tcp_connections_closed_total", "counter", "TCP connections through the service that a backend closed.");
        per_backend(f, [](const BackendCounters& c) { return c.closed; });
    }
    {
        Family f(out, "istio_tcp_sent_bytes_total", "counter",
                 "Payload bytes a backend sent, counted when the connection closes.");
        per_backend(f, [](const BackendCounters& c) { return c.bytes_sent; });
    }
    {
        Family f(out, "istio_tcp_received_bytes_total", "counter",
                 "Payload bytes a backend received, counted when the connection closes.");
        per_backend(f, [](const BackendCounters& c) { return c.bytes_received; });
    }
    {
        Family f(out, "tcpshift_lookups_total", "counter", "New connections to a service's frontends.");
        for (const auto& svc : plan.services) f.sample({{"service", svc.name}}, service(svc.id).lookups);
    }
    {
        Family f(out, "tcpshift_steered_total", "counter", "New connections handed to a subset's listeners.");
        for (const auto& svc : plan.services)
            for (const auto& subset : svc.subsets) {
                uint64_t steered = 0;
                for (const auto& b : subset.backends) steered += facts.stats.route(svc.id, b.id).steered;
                f.sample({{"service", svc.name}, {"subset", subset.name}}, steered);
            }
    }
    {
        Family f(out, "tcpshift_fallback_total", "counter",
                 "Connections whose chosen backend had no listener and went to another.");
        for (const auto& svc : plan.services) f.sample({{"service", svc.name}}, service(svc.id).fallbacks);
    }
    {
        Family f(out, "tcpshift_no_backend_total", "counter", "Connections refused: no backend had a listener.");
        for (const auto& svc : plan.services) f.sample({{"service", svc.name}}, service(svc.id).no_backend);
    }
    {
        Family f(out, "tcpshift_backend_ready", "gauge", "1 when the backend's listener is registered.");
        for (const auto& svc : plan.services)
            for (const auto& subset : svc.subsets)
                for (const auto& b : subset.backends)
                    f.sample({{"service", svc.name}, {"subset", subset.name}, {"backend", b.address.str()}},
                             facts.ready.count(b.id) ? 1 : 0);
    }
    {
        Family f(out, "tcpshift_connections_active", "gauge", "Connections a backend accepted and has not closed.");
        for (const auto& svc : plan.services)
            for (const auto& subset : svc.subsets)
                for (const auto& b : subset.backends)
                    f.sample({{"service", svc.name}, {"subset", subset.name}, {"backend", b.address.str()}},
                             facts.stats.route(svc.id, b.id).active());
    }
    {
        Family f(out, "tcpshift_weight", "gauge", "A subset's configured weight.");
        for (const auto& svc : plan.services)
            for (const auto& subset : svc.subsets)
                f.sample({{"service", svc.name}, {"subset", subset.name}}, subset.weight);
    }
    {
        Family f(out, "tcpshift_config_reloads_total", "counter", "Configuration reloads by the agent, by result.");
        for (const char* result : {"success", "error"}) {
            auto it = facts.reloads.find(result);
            f.sample({{"result", result}}, it == facts.reloads.end() ? 0 : it->second);
        }
    }
    return out.str();
}

}  // namespace tcpshift
