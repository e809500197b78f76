#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sstream>

#include "bpf/abi.h"
#include "config/duration.h"
#include "dataplane/pins.h"
#include "report/sli.h"

namespace tcpshift {

using nlohmann::json;

std::string percent(double fraction) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f%%", fraction * 100.0);
    return buf;
}

void TextTable::print(std::ostream& out, const std::string& indent) const {
    std::vector<size_t> width;
    for (const auto& r : rows_)
        for (size_t i = 0; i < r.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], r[i].size());
        }
    for (const auto& r : rows_) {
        std::string line = indent;
        for (size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
        }
        out << line << "\n";
    }
}

namespace {

std::string join_frontends(const PlanService& svc) {
    std::string s;
    for (const auto& f : svc.frontends) s += (s.empty() ? "" : ", ") + f.str();
    return s;
}

json frontends_json(const PlanService& svc) {
    json a = json::array();
    for (const auto& f : svc.frontends) a.push_back(f.str());
    return a;
}

// A connect-time backend is ready unless ejected or down by the agent's probe.
std::string remote_ready_cell(const BackendHealth& h) {
    if (h.probe_down) return "no, probe failed";
    if (h.ejected_ms > 0)
        return "no, ejected for " + std::to_string((h.ejected_ms + 999) / 1000) + " s after failed handshakes";
    return h.failures ? "yes, " + std::to_string(h.failures) + " failed handshakes in a row" : "yes";
}

// "yes", "no", or either with the sockets that do not belong: "no, holds listener on ...".
std::string ready_cell(uint32_t id, const StatusFacts& facts) {
    auto h = facts.health.find(id);
    if (h != facts.health.end() && h->second.remote) return remote_ready_cell(h->second);
    std::string cell = facts.ready.count(id) ? "yes" : "no";
    // A socket backend is ejected after early closes only with outlierDetection written.
    if (h != facts.health.end() && h->second.ejected_ms > 0)
        cell = "no, ejected for " + std::to_string((h->second.ejected_ms + 999) / 1000) + " s after " +
               (h->second.overflows ? "failed connections (closed early, or refused by its full listen queue)"
                                    : "connections it closed early");
    if (auto it = facts.foreign.find(id); it != facts.foreign.end())
        for (const auto& s : it->second) cell += ", holds " + s;
    return cell;
}

// The kernel's health of a backend, for scripts; null for a socket backend that was never
// judged (no outlierDetection, or no failure yet).
json health_json(uint32_t id, const StatusFacts& facts) {
    auto it = facts.health.find(id);
    if (it == facts.health.end()) return nullptr;
    if (!it->second.remote && it->second.failed == 0 && it->second.ejected_ms == 0 && it->second.overflows == 0)
        return nullptr;
    const BackendHealth& h = it->second;
    return {{"probe_down", h.probe_down},
            {"ejected_ms", h.ejected_ms},
            {"failures_in_a_row", h.failures},
            {"failed_handshakes", h.failed},
            {"ejections", h.ejections},
            {"listen_overflows", h.overflows}};
}

// The share of its weight a warming backend takes now; std::nullopt past its warmup.
std::optional<double> warming_factor(const PlanService& svc, uint32_t id, const StatusFacts& facts) {
    const WarmupPolicy& w = svc.balance.warmup;
    auto it = facts.health.find(id);
    if (!w.duration_ms || it == facts.health.end() || !it->second.ready_age_ms || *it->second.ready_age_ms >= w.duration_ms)
        return std::nullopt;
    return w.factor(*it->second.ready_age_ms);
}

// ready_cell(), and for a backend of `svc` that warms up, how far its ramp is.
std::string status_cell(const PlanService& svc, uint32_t id, const StatusFacts& facts) {
    std::string cell = ready_cell(id, facts);
    auto factor = warming_factor(svc, id, facts);
    if (!factor || !cell.starts_with("yes")) return cell;
    const uint64_t left = svc.balance.warmup.duration_ms - *facts.health.at(id).ready_age_ms;
    return cell + ", warming up: " + std::to_string(static_cast<int>(*factor * 100)) + "% of its weight, " +
           std::to_string((left + 999) / 1000) + " s to go";
}

json warmup_json(const PlanService& svc, uint32_t id, const StatusFacts& facts) {
    auto factor = warming_factor(svc, id, facts);
    if (!factor) return nullptr;
    const uint64_t age = *facts.health.at(id).ready_age_ms;
    return {{"weight_percent", *factor * 100}, {"ready_for_ms", age}, {"remaining_ms", svc.balance.warmup.duration_ms - age}};
}

// Whether the service is in panic by the kernel's health: minHealthPercent is set and fewer of
// its weighted backends than that share are available. Sets *available and *weighted.
bool in_panic(const PlanService& svc, const StatusFacts& facts, size_t* available, size_t* weighted) {
    *available = *weighted = 0;
    for (const auto& subset : svc.subsets) {
        if (subset.weight == 0) continue;
        for (const auto& b : subset.backends) {
            ++*weighted;
            auto h = facts.health.find(b.id);
            *available += h == facts.health.end() || h->second.available();
        }
    }
    const uint32_t percent = svc.outlier.min_health_percent;
    return percent && *weighted && *available * 100 < percent * *weighted;
}

bool kernel_remote(uint32_t id, const StatusFacts& facts) {
    auto h = facts.health.find(id);
    return h != facts.health.end() && h->second.remote;
}

std::string path_name(bool remote) { return remote ? "connect-time" : "socket"; }

// Forwarding to remote backends for clients that do not connect() through the cgroup is not
// done: said, so that such a service does not seem to serve everyone.
const char* kRemoteOnlyNote =
    "clients elsewhere (other hosts, a gateway port) are not steered to connect-time backends";

std::string set_usage(const PlanService& svc) {
    std::string s = "tcpshift set " + svc.name;
    for (const auto& subset : svc.subsets) s += " " + subset.name + "=" + std::to_string(subset.weight);
    return s;
}

// What the outlier policy does, for a service with connect-time backends.
std::string outlier_text(const OutlierPolicy& p) {
    if (p.consecutive_errors == 0) return "off: failed connections never eject a backend";
    return "eject after " + std::to_string(p.consecutive_errors) + " failed connection" +
           (p.consecutive_errors == 1 ? "" : "s") + " in a row for " + duration_str(p.base_ejection_ms) +
           " (each ejection in a row one more, up to " + std::to_string(TS_MAX_EJECTION_FACTOR) + "x)" +
           (p.max_ejection_percent < 100
                ? ", at most " + std::to_string(p.max_ejection_percent) + "% of the backends out (always one)"
                : std::string()) +
           (p.min_health_percent
                ? "; below " + std::to_string(p.min_health_percent) +
                      "% of the backends available, ejections are ignored (panic: every backend takes its weight)"
                : std::string());
}

json outlier_json(const PlanService& svc) {
    if (!service_paths(svc).connect_time && !svc.outlier.written()) return nullptr;
    return {{"consecutive_errors", svc.outlier.consecutive_errors},
            {"base_ejection_ms", svc.outlier.base_ejection_ms},
            {"max_ejection_percent", svc.outlier.max_ejection_percent},
            {"min_health_percent", svc.outlier.min_health_percent},
            {"from", svc.outlier.where.file.empty() ? "default" : svc.outlier.where.str()}};
}

// The slots of a service's table: a hashing one's size, a round robin's cycle.
size_t table_slots(const PlanService& svc) {
    for (const auto& t : svc.tables)
        if (t.has_slots()) return t.slot_count();
    return 0;
}

// How new connections draw from the weights.
std::string balance_text(const PlanService& svc) {
    const std::string slots = std::to_string(table_slots(svc));
    switch (svc.balance.mode) {
        case Balance::kRoundRobin:
            return "ROUND_ROBIN: a weighted cycle of " + slots + " connections, each cycle split exactly";
        case Balance::kRandom:
            return "RANDOM: a random draw per connection from a table of " + slots + " slots";
        case Balance::kLeastConn:
            return "LEAST_CONN: a random draw from a table of " + slots +
                   " slots picks a subset by weight; of that backend and another of its subset, the one with "
                   "fewer active connections (connect-time backends: the draw alone)";
        case Balance::kHash: break;
    }
    return std::string("hash of the ") + (svc.affinity == Affinity::kSourceIp ? "client address" : "4-tuple") +
           " into a Maglev table of " + slots + " slots";
}

// What warmup does, with the factor at a few points of the ramp.
std::string warmup_text(const WarmupPolicy& w) {
    std::ostringstream out;
    out << "a backend that starts listening (or whose probe finds it back) takes its weight scaled by "
           "max(" << w.min_percent << "%, (t/" << duration_str(w.duration_ms) << ")^(1/" << w.aggression
        << ")) for " << duration_str(w.duration_ms) << ":";
    for (int quarter = 0; quarter <= 3; ++quarter) {
        const uint64_t t = w.duration_ms * quarter / 4;
        out << (quarter ? ", " : " ") << std::round(w.factor(t) * 1000) / 10 << "% at " << duration_str(t);
    }
    return out.str();
}

json warmup_policy_json(const WarmupPolicy& w) {
    if (!w.duration_ms) return nullptr;
    return {{"duration_ms", w.duration_ms},
            {"minimum_percent", w.min_percent},
            {"aggression", w.aggression},
            {"from", w.where.str()}};
}

json balance_json(const PlanService& svc) {
    return {{"mode", balance_name(svc.balance.mode)},
            {"slots", table_slots(svc)},
            {"warmup", warmup_policy_json(svc.balance.warmup)},
            {"from", svc.balance.where.file.empty() ? "default" : svc.balance.where.str()}};
}

std::string keepalive_text(const KeepalivePolicy& k) {
    if (!k.enabled) return "not set (the kernel's: off unless the application sets it)";
    auto part = [](uint32_t v, const std::string& unit) { return v ? std::to_string(v) + unit : "the kernel's"; };
    return "on: first probe after " + part(k.time_s, " s") + " idle, then every " + part(k.interval_s, " s") + ", " +
           part(k.probes, "") + " unanswered probes drop the connection";
}

json keepalive_json(const KeepalivePolicy& k) {
    if (!k.enabled) return nullptr;
    return {{"time_s", k.time_s}, {"interval_s", k.interval_s}, {"probes", k.probes}, {"from", k.where.str()}};
}

std::string lifetime_text(const LifetimePolicy& l) {
    if (!l.any()) return "no limit";
    std::string text;
    if (l.max_duration_ms)
        text += "closed after " + duration_str(l.max_duration_ms) + " (maxConnectionDuration, from " +
                l.duration_where.str() + ")";
    if (l.idle_timeout_ms)
        text += std::string(text.empty() ? "closed" : ", or") + " after " + duration_str(l.idle_timeout_ms) +
                " idle (idleTimeout, from " + l.idle_where.str() + ")";
    return text + "; plus up to " + std::to_string(kLifetimeJitterPercent) +
           "% jitter, by the agent, with a reset (RST)";
}

json lifetime_json(const LifetimePolicy& l) {
    if (!l.any()) return nullptr;
    json out = {{"jitter_percent", kLifetimeJitterPercent}, {"by", "agent"}, {"close", "reset"}};
    if (l.max_duration_ms)
        out["max_connection_duration_ms"] = l.max_duration_ms, out["max_connection_duration_from"] = l.duration_where.str();
    if (l.idle_timeout_ms)
        out["idle_timeout_ms"] = l.idle_timeout_ms, out["idle_timeout_from"] = l.idle_where.str();
    return out;
}

json rebalance_json(const RebalancePolicy& r) {
    if (!r.enabled) return nullptr;
    return {{"rate", r.rate}, {"max", r.max}, {"from", r.where.str()}};
}

}  // namespace

std::string served_clients(const PlanService& service) {
    const ServicePaths paths = service_paths(service);
    if (paths.socket && paths.connect_time)
        return "every client (socket) to its local backends; local clients (connect-time) to all";
    if (paths.connect_time) return "local clients (connect-time)";
    if (paths.socket) return "every client (socket)";
    return "no client: no backend has weight";
}

json explain_json(const Plan& plan) {
    json services = json::array();
    for (const auto& svc : plan.services) {
        json frontends = json::array();
        for (size_t i = 0; i < svc.frontends.size(); ++i)
            frontends.push_back({{"address", svc.frontends[i].str()},
                                 {"from", i < svc.frontends_where.size() ? svc.frontends_where[i].str() : ""}});
        json subsets = json::array();
        for (const auto& subset : svc.subsets) {
            json backends = json::array();
            for (const auto& b : subset.backends)
                backends.push_back({{"address", b.address.str()},
                                    {"percent", b.share * 100.0},
                                    {"path", path_name(b.remote)},
                                    {"from", b.where.str()}});
            subsets.push_back({{"name", subset.name},
                               {"weight", subset.weight},
                               {"percent", subset.share * 100.0},
                               {"from", subset.where.str()},
                               {"weight_from", subset.weight_where.str()},
                               {"backends", backends}});
        }
        json local = json::array();
        for (const auto& vip : svc.local_addresses) local.push_back(vip.address_str());
        services.push_back({{"service", svc.name},
                            {"frontends", frontends},
                            {"affinity", affinity_name(svc.affinity)},
                            {"affinity_from", svc.affinity_where.str()},
                            {"takeover", svc.takeover},
                            {"local_routes", local},
                            {"serves", served_clients(svc)},
                            {"outlier_detection", outlier_json(svc)},
                            {"load_balancing", balance_json(svc)},
                            {"tcp_keepalive", keepalive_json(svc.keepalive)},
                            {"max_connections", svc.cap.max_connections ? json{{"per_backend", svc.cap.max_connections},
                                                                               {"from", svc.cap.where.str()}}
                                                                         : json(nullptr)},
                            {"connection_lifetime", lifetime_json(svc.lifetime)},
                            {"rebalance_after_shift", rebalance_json(svc.rebalance)},
                            {"from", svc.where.str()},
                            {"resource", svc.origin.str()},
                            {"subsets", subsets}});
    }
    return {{"services", services}};
}

void print_explain(const Plan& plan, std::ostream& out) {
    for (const auto& svc : plan.services) {
        out << "service " << svc.name << "  (" << svc.origin.str() << ", " << svc.where.str() << ")\n";
        for (size_t i = 0; i < svc.frontends.size(); ++i)
            out << "  frontend " << svc.frontends[i].str()
                << (i < svc.frontends_where.size() ? "  from " + svc.frontends_where[i].str() : "") << "\n";
        for (const auto& vip : svc.local_addresses)
            out << "  local route for virtual IP " << vip.address_str() << "\n";
        out << "  affinity " << affinity_name(svc.affinity)
            << (svc.affinity_where.line > 0 ? "  from " + svc.affinity_where.str() : "") << "\n";
        out << "  serves " << served_clients(svc) << "\n";
        out << "  load balancing: " << balance_text(svc)
            << (svc.balance.where.file.empty() ? "  (default)" : "  from " + svc.balance.where.str()) << "\n";
        if (svc.balance.warmup.duration_ms)
            out << "  warmup: " << warmup_text(svc.balance.warmup) << "  from " << svc.balance.warmup.where.str()
                << "\n";
        out << "  tcp keepalive: " << keepalive_text(svc.keepalive)
            << (svc.keepalive.enabled ? "  from " + svc.keepalive.where.str() : "") << "\n";
        if (svc.cap.max_connections)
            out << "  max connections: " << svc.cap.max_connections
                << " per backend, established or in the handshake; at the cap a connection draws another backend "
                   "by weight, and with all at their caps it is refused  from "
                << svc.cap.where.str() << "\n";
        out << "  connection lifetime: " << lifetime_text(svc.lifetime) << "\n";
        if (svc.rebalance.enabled)
            out << "  rebalance after each shift: " << svc.rebalance.rate << "/s"
                << (svc.rebalance.max ? ", at most " + std::to_string(svc.rebalance.max) : std::string())
                << "  from " << svc.rebalance.where.str() << "\n";
        if (service_paths(svc).connect_time || svc.outlier.written())
            out << "  outlier detection: " << outlier_text(svc.outlier)
                << (svc.outlier.written() ? "  from " + svc.outlier.where.str() : "  (default)")
                << (service_paths(svc).socket && svc.outlier.written()
                        ? "; a socket backend fails by closing or resetting a connection within 1 s, having "
                          "written nothing"
                        : "")
                << "\n";
        if (service_paths(svc).connect_time) out << "  note: " << kRemoteOnlyNote << "\n";
        TextTable t;
        t.row({"SUBSET", "WEIGHT", "SHARE", "BACKEND", "BACKEND SHARE", "PATH", "WEIGHT FROM", "BACKEND FROM"});
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends)
                t.row({subset.name, std::to_string(subset.weight), percent(subset.share), b.address.str(),
                       percent(b.share), path_name(b.remote), subset.weight_where.str(), b.where.str()});
        t.print(out, "  ");
    }
}

namespace {

size_t live_of(const StatusFacts& facts, uint32_t service_id, uint32_t backend_id) {
    if (!facts.live) return 0;
    auto it = facts.live->find({service_id, backend_id});
    return it == facts.live->end() ? 0 : it->second;
}

size_t live_of(const StatusFacts& facts, const PlanService& svc) {
    size_t n = 0;
    for (const auto& subset : svc.subsets)
        for (const auto& b : subset.backends) n += live_of(facts, svc.id, b.id);
    return n;
}

// "12 (40.0%)": a backend's established connections and their share of its service's.
std::string live_cell(const StatusFacts& facts, const PlanService& svc, uint32_t backend_id) {
    if (!facts.live) return "?";
    const size_t n = live_of(facts, svc.id, backend_id), total = live_of(facts, svc);
    return std::to_string(n) + (total ? " (" + percent(static_cast<double>(n) / static_cast<double>(total)) + ")" : "");
}

// A backend's established connections as the kernel counts them, its handshakes holding a
// place under its cap, and the cap: "3", "5 of max 5 (+1 in handshake)".
std::string connections_cell(uint32_t backend_id, const StatusFacts& facts) {
    auto it = facts.health.find(backend_id);
    if (it == facts.health.end()) return "-";
    const BackendHealth& h = it->second;
    std::string cell = std::to_string(h.load.active);
    if (h.max_connections) cell += " of max " + std::to_string(h.max_connections);
    if (h.load.pending) cell += " (+" + std::to_string(h.load.pending) + " in handshake)";
    return cell;
}

json load_json(uint32_t backend_id, const StatusFacts& facts) {
    auto it = facts.health.find(backend_id);
    if (it == facts.health.end()) return nullptr;
    const BackendHealth& h = it->second;
    return {{"active", h.load.active}, {"in_handshake", h.load.pending}, {"max", h.max_connections}};
}

}  // namespace

json status_json(const Plan& plan, const StatusFacts& facts) {
    json services = json::array();
    for (const auto& svc : plan.services) {
        json subsets = json::array();
        for (const auto& subset : svc.subsets) {
            json backends = json::array();
            for (const auto& b : subset.backends)
                backends.push_back({{"address", b.address.str()},
                                    {"id", b.id},
                                    {"path", path_name(kernel_remote(b.id, facts))},
                                    {"ready", ready_cell(b.id, facts).starts_with("yes")},
                                    {"status", status_cell(svc, b.id, facts)},
                                    {"warmup", warmup_json(svc, b.id, facts)},
                                    {"health", health_json(b.id, facts)},
                                    {"connections", load_json(b.id, facts)},
                                    {"foreign_sockets", facts.foreign.count(b.id) ? facts.foreign.at(b.id)
                                                                                  : std::vector<std::string>{}},
                                    {"live_connections", facts.live ? json(live_of(facts, svc.id, b.id)) : json()}});
            subsets.push_back({{"name", subset.name},
                               {"weight", subset.weight},
                               {"percent", subset.share * 100.0},
                               {"backends", backends}});
        }
        services.push_back({{"service", svc.name},
                            {"id", svc.id},
                            {"frontends", frontends_json(svc)},
                            {"affinity", affinity_name(svc.affinity)},
                            {"takeover", svc.takeover},
                            {"resource", svc.origin.str()},
                            {"serves", served_clients(svc)},
                            {"set", set_usage(svc)},
                            {"live_connections", facts.live ? json(live_of(facts, svc)) : json()},
                            {"panic", [&] {
                                 size_t available = 0, weighted = 0;
                                 return in_panic(svc, facts, &available, &weighted);
                             }()},
                            {"subsets", subsets}});
    }
    json routes = json::array();
    for (const auto& vip : facts.local_routes) routes.push_back(vip.address_str());
    return {{"netns_inode", facts.netns_inode},
            {"attached", facts.attached},
            {"local_routes", routes},
            {"cgroup", facts.cgroup},
            {"client_netns_cookies", facts.client_scope},
            {"destroy_path", facts.destroy_path},
            {"pins", facts.attached ? pin_dir(facts.netns_inode) : ""},
            {"services", services}};
}

void print_status(const Plan& plan, const StatusFacts& facts, std::ostream& out) {
    out << "network namespace " << facts.netns_inode << ": "
        << (facts.attached ? "attached, pins in " + pin_dir(facts.netns_inode) : "not attached") << "\n";
    if (!facts.local_routes.empty()) {
        out << "local routes added for virtual IPs:";
        for (const auto& vip : facts.local_routes) out << " " << vip.address_str();
        out << "  (ip route show table local proto 250)\n";
    }
    if (!facts.cgroup.empty()) {
        out << "connect-time steering serves clients in cgroup " << facts.cgroup;
        if (facts.client_scope.empty()) out << ", every network namespace\n";
        else out << ", only " << facts.client_scope.size() << " network namespaces (attach --client-netns)\n";
    }
    if (!facts.destroy_path.empty())
        out << "connections are closed (maxConnectionDuration, idleTimeout, rebalance) by " << facts.destroy_path
            << ", a reset to the client\n";
    if (plan.services.empty()) {
        out << "no services applied\n";
        return;
    }
    for (const auto& svc : plan.services) {
        out << "\nservice " << svc.name << "  frontends " << join_frontends(svc) << "  affinity "
            << affinity_name(svc.affinity) << (svc.takeover ? "  takeover" : "") << "\n";
        out << "  serves " << served_clients(svc) << "\n";
        size_t available = 0, weighted = 0;
        if (in_panic(svc, facts, &available, &weighted))
            out << "  panic: " << available << " of " << weighted << " backends available, under minHealthPercent "
                << svc.outlier.min_health_percent << "%: ejected backends take their weight too\n";
        TextTable t;
        t.row({"SUBSET", "WEIGHT", "SHARE", "BACKEND", "PATH", "READY", "LIVE CONNECTIONS", "HELD (CAP)"});
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends)
                t.row({subset.name, std::to_string(subset.weight), percent(subset.share), b.address.str(),
                       path_name(kernel_remote(b.id, facts)), status_cell(svc, b.id, facts), live_cell(facts, svc, b.id),
                       connections_cell(b.id, facts)});
        t.print(out, "  ");
        out << "  shift with: " << set_usage(svc)
            << (facts.netns_option.empty() ? "" : " --netns " + facts.netns_option) << "\n";
    }
}

ServiceCounters StatsFacts::service(uint32_t service_id) const {
    auto it = services.find(service_id);
    return it == services.end() ? ServiceCounters{} : it->second;
}

BackendCounters StatsFacts::route(uint32_t service_id, uint32_t backend_id) const {
    auto it = routes.find({service_id, backend_id});
    return it == routes.end() ? BackendCounters{} : it->second;
}

BackendCounters StatsFacts::backend(uint32_t backend_id) const {
    auto it = backends.find(backend_id);
    return it == backends.end() ? BackendCounters{} : it->second;
}

BackendSli StatsFacts::backend_sli(uint32_t backend_id) const {
    auto it = sli.find(backend_id);
    return it == sli.end() ? BackendSli{} : it->second;
}

BackendFailures StatsFacts::backend_failures(uint32_t backend_id) const {
    auto it = failures.find(backend_id);
    return it == failures.end() ? BackendFailures{} : it->second;
}

namespace {

// The connections a backend at `address` accepted, as the stats JSON lists them.
json connections_json(const std::string& address, const BackendCounters& c) {
    return {{"address", address},
            {"opened", c.opened},
            {"closed", c.closed},
            {"active", c.active()},
            {"bytes_sent", c.bytes_sent},
            {"bytes_received", c.bytes_received}};
}

}  // namespace

json stats_json(const Plan& plan, const StatsFacts& facts) {
    json services = json::array();
    for (const auto& svc : plan.services) {
        const ServiceCounters sc = facts.service(svc.id);
        json subsets = json::array();
        for (const auto& subset : svc.subsets) {
            json backends = json::array();
            uint64_t subset_steered = 0;
            for (const auto& b : subset.backends) {
                const BackendCounters c = facts.route(svc.id, b.id);
                subset_steered += c.steered;
                json backend = connections_json(b.address.str(), c);
                backend["steered"] = c.steered;
                backend["measured"] = sli_json(facts, b.id);
                backends.push_back(backend);
            }
            subsets.push_back({{"name", subset.name}, {"steered", subset_steered}, {"backends", backends}});
        }
        services.push_back({{"service", svc.name},
                            {"lookups", sc.lookups},
                            {"fallbacks", sc.fallbacks},
                            {"refused", sc.no_backend},
                            {"connect_rewrites", sc.connects},
                            {"connect_errors", sc.connect_errors},
                            {"connect_ejected_draws", sc.connect_ejected},
                            {"spilled", sc.spills},
                            {"overflow", sc.overflows},
                            {"subsets", subsets}});
    }
    // Every connection each backend accepted, through any service or direct to its address.
    json backends = json::array();
    for (const auto& [address, id] : plan.ids.backends) {
        backends.push_back(connections_json(address, facts.backend(id)));
    }
    return {{"services", services}, {"backends", backends}};
}

void print_stats(const Plan& plan, const StatsFacts& facts, std::ostream& out) {
    const json j = stats_json(plan, facts);
    for (const auto& svc : j["services"]) {
        out << "service " << svc["service"].get<std::string>() << "  lookups " << svc["lookups"] << "  fallbacks "
            << svc["fallbacks"] << "  refused " << svc["refused"];
        if (svc["connect_rewrites"] != 0 || svc["connect_errors"] != 0)
            out << "  connect rewrites " << svc["connect_rewrites"] << "  connect errors " << svc["connect_errors"];
        if (svc["spilled"] != 0 || svc["overflow"] != 0)
            out << "  spilled at a cap " << svc["spilled"] << "  overflow " << svc["overflow"];
        out << "\n";
        // New connections: those sk_lookup saw, and those connect-time steering sent elsewhere.
        const uint64_t lookups = svc["lookups"].get<uint64_t>() + svc["connect_rewrites"].get<uint64_t>();
        TextTable t;
        t.row({"SUBSET", "BACKEND", "STEERED", "SHARE", "OPENED", "CLOSED", "ACTIVE", "SENT", "RECEIVED"});
        for (const auto& subset : svc["subsets"])
            for (const auto& b : subset["backends"]) {
                const uint64_t steered = b["steered"];
                t.row({subset["name"].get<std::string>(), b["address"].get<std::string>(), std::to_string(steered),
                       lookups ? percent(static_cast<double>(steered) / lookups) : "-",
                       b["opened"].dump(), b["closed"].dump(), b["active"].dump(), b["bytes_sent"].dump(),
                       b["bytes_received"].dump()});
            }
        t.print(out, "  ");
    }
    for (const auto& svc : plan.services) {
        out << "\nservice " << svc.name << "\n";
        print_sli(svc, facts, out);
    }
}

}  // namespace tcpshift
