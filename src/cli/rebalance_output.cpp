#include "cli/rebalance_output.h"

#include <cstdio>

namespace tcpshift {

namespace {

std::string percent_of(size_t n, size_t total) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%.1f%%", total ? 100.0 * static_cast<double>(n) / static_cast<double>(total) : 0.0);
    return buf;
}

size_t total_live(const std::vector<BackendBalance>& backends) {
    size_t n = 0;
    for (const auto& b : backends) n += b.live;
    return n;
}

}  // namespace

nlohmann::json rebalance_json(const std::string& service, const RebalanceOptions& options,
                              const RebalanceReport& report) {
    nlohmann::json backends = nlohmann::json::array();
    for (size_t i = 0; i < report.before.size(); ++i) {
        const BackendBalance& b = report.before[i];
        const BackendBalance& a = i < report.after.size() ? report.after[i] : b;
        backends.push_back({{"subset", b.subset},
                            {"backend", b.address.str()},
                            {"weight_percent", b.share * 100.0},
                            {"before", b.live},
                            {"after", a.live},
                            {"target_after", a.target}});
    }
    return {{"service", service},
            {"closed", report.closed},
            {"converged", report.converged},
            {"seconds", report.seconds},
            {"rounds", report.rounds},
            {"rate", options.rate},
            {"max", options.max},
            {"close", "reset"},
            {"destroy_path", report.path},
            {"backends", backends}};
}

void print_rebalance(const std::string& service, const RebalanceOptions& options, const RebalanceReport& report,
                     std::ostream& out) {
    const size_t before = total_live(report.before), after = total_live(report.after);
    out << "SUBSET   BACKEND                 WEIGHT   BEFORE          AFTER           TARGET\n";
    for (size_t i = 0; i < report.before.size(); ++i) {
        const BackendBalance& b = report.before[i];
        const BackendBalance& a = i < report.after.size() ? report.after[i] : b;
        char line[256];
        std::snprintf(line, sizeof(line), "%-8s %-23s %-8s %-15s %-15s %zu\n", b.subset.c_str(), b.address.str().c_str(),
                      percent_of(static_cast<size_t>(b.share * 1000 + 0.5), 1000).c_str(),
                      (std::to_string(b.live) + " " + percent_of(b.live, before)).c_str(),
                      (std::to_string(a.live) + " " + percent_of(a.live, after)).c_str(), a.target);
        out << line;
    }
    char seconds[32];
    std::snprintf(seconds, sizeof(seconds), "%.1f s", report.seconds);
    out << service << ": closed " << report.closed << " connections (reset) in " << seconds << " at up to "
        << options.rate << "/s" << (options.max ? ", at most " + std::to_string(options.max) : std::string()) << ", by "
        << report.path << "; "
        << (report.converged ? "no backend is above its share"
                             : "some backend is still above its share (budget or timeout reached)")
        << "\n";
}

}  // namespace tcpshift
