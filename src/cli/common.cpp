#include "cli/verbs.h"

#include "report/report.h"

namespace tcpshift {

void add_netns_option(CLI::App& command, TargetOptions& target) {
    command.add_option("--netns", target.netns,
                       "network namespace: a name under /var/run/netns or a path like /proc/PID/ns/net "
                       "(default: the caller's)");
}

void add_force_option(CLI::App& command, bool& force) {
    command.add_flag("--force", force,
                     "change it even though an agent keeps this namespace; the agent restores its config at its "
                     "next reload");
}

void add_namespace_option(CLI::App& command, std::string& ns, const char* what) {
    command.add_option("-n,--namespace", ns, what)->capture_default_str();
}

void add_json_flag(CLI::App& command, bool& json) { command.add_flag("--json", json, "print JSON"); }

Progress print_progress(std::ostream& err) {
    return [&err](const Event& event) {
        switch (event.kind) {
            case Event::Kind::kNote: err << "note: "; break;
            case Event::Kind::kWarning: err << "warning: "; break;
            case Event::Kind::kStep: break;
        }
        err << event.text << "\n";
    };
}

void print_applied(const Plan& plan, std::ostream& out) {
    for (const auto& svc : plan.services) {
        out << "service " << svc.name << ":";
        for (const auto& subset : svc.subsets) out << " " << subset.name << " " << percent(subset.share);
        out << "\n";
    }
    if (plan.services.empty()) out << "no services\n";
}

}  // namespace tcpshift
