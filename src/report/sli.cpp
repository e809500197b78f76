#include "report/sli.h"

#include <cstdio>
#include <string>

namespace tcpshift {

namespace {

using json = nlohmann::json;

// The bucket bound under which a fraction q of a histogram's values fall, in its unit; null
// when it has no value, and a negative -1 for "above the last bound".
json quantile_json(const Histogram& h, double q, uint64_t (*bound)(size_t)) {
    if (h.count == 0) return nullptr;
    const uint64_t b = h.quantile_bound(q, bound);
    return b == UINT64_MAX ? json(-1) : json(b);
}

json histogram_json(const Histogram& h, uint64_t (*bound)(size_t), const char* unit) {
    return {{"count", h.count},
            {std::string("mean_") + unit, h.count ? json(static_cast<double>(h.sum) / h.count) : json(nullptr)},
            {std::string("p50_at_most_") + unit, quantile_json(h, 0.5, bound)},
            {std::string("p99_at_most_") + unit, quantile_json(h, 0.99, bound)}};
}

// "≤ 64 us", "≤ 1.0 ms", "≤ 4.2 s"; "-" with no value; "> B" past the last bound.
std::string bound_text(const Histogram& h, double q, uint64_t (*bound)(size_t), double unit_s) {
    if (h.count == 0) return "-";
    const uint64_t b = h.quantile_bound(q, bound);
    const bool above = b == UINT64_MAX;
    const double s = static_cast<double>(above ? bound(h.buckets.size() - 2) : b) * unit_s;
    char text[32];
    if (s < 1e-3)
        std::snprintf(text, sizeof(text), "%.0f us", s * 1e6);
    else if (s < 1)
        std::snprintf(text, sizeof(text), "%.1f ms", s * 1e3);
    else
        std::snprintf(text, sizeof(text), "%.1f s", s);
    return std::string(above ? "> " : "<= ") + text;
}

}  // namespace

json sli_json(const StatsFacts& facts, uint32_t backend_id) {
    const BackendSli s = facts.backend_sli(backend_id);
    const BackendFailures f = facts.backend_failures(backend_id);
    return {{"failures",
             {{f.remote ? "handshake_failed" : "closed_before_data", f.before_data},
              {"listen_overflow", f.listen_overflows},
              {"reset_after_data", s.reset_after_data},
              {"reset_without_data", s.reset_without_data}}},
            {"retransmits", s.retransmits},
            {"unanswered", s.unanswered},
            {"rtt", histogram_json(s.rtt_us, rtt_bound_us, "us")},
            {"lifetime", histogram_json(s.duration_us, duration_bound_us, "us")}};
}

void print_sli(const PlanService& svc, const StatsFacts& facts, std::ostream& out) {
    TextTable t;
    t.row({"SUBSET", "BACKEND", "FAILED BEFORE DATA", "LISTEN OVERFLOW", "RESET AFTER DATA", "LATE SILENT RESET",
           "UNANSWERED", "RETRANSMITS",
           "RTT p50", "RTT p99", "LIFETIME p50", "LIFETIME p99"});
    for (const auto& subset : svc.subsets)
        for (const auto& b : subset.backends) {
            const BackendSli s = facts.backend_sli(b.id);
            const BackendFailures f = facts.backend_failures(b.id);
            t.row({subset.name, b.address.str(), std::to_string(f.before_data), std::to_string(f.listen_overflows),
                   std::to_string(s.reset_after_data), std::to_string(s.reset_without_data), std::to_string(s.unanswered), std::to_string(s.retransmits),
                   bound_text(s.rtt_us, 0.5, rtt_bound_us, 1e-6), bound_text(s.rtt_us, 0.99, rtt_bound_us, 1e-6),
                   bound_text(s.duration_us, 0.5, duration_bound_us, 1e-6),
                   bound_text(s.duration_us, 0.99, duration_bound_us, 1e-6)});
        }
    out << "  connections through the service, as the kernel measured them (per backend address):\n";
    t.print(out, "  ");
}

}  // namespace tcpshift
