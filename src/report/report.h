// What `explain`, `status` and `stats` print: one JSON document for scripts, and the same
// facts as aligned text for people. Pure functions of their inputs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>

#include "compile/plan.h"
#include "dataplane/backend_health.h"
#include "dataplane/counters.h"

namespace tcpshift {

// Which clients a service's frontends serve, as the plan's paths say:
// "every client (socket)", "local clients (connect-time)", or both.
std::string served_clients(const PlanService& service);

nlohmann::json explain_json(const Plan& plan);
void print_explain(const Plan& plan, std::ostream& out);

struct StatusFacts {
    uint64_t netns_inode = 0;
    bool attached = false;
    std::set<uint32_t> ready;  // backend ids with a registered listener that serves their address
    // backend id -> the registered sockets that do not serve its address (describe())
    std::map<uint32_t, std::vector<std::string>> foreign;
    std::vector<Endpoint> local_routes;  // virtual IPs tcpshift made local
    std::map<uint32_t, BackendHealth> health;  // backend id -> how the kernel reaches it
    std::string netns_option;                  // the --netns the command was given, for hints
    std::string cgroup;                        // where the cgroup programs are attached
    std::vector<uint64_t> client_scope;        // attach --client-netns cookies; empty: all
    // (service id, backend id) -> established connections that came through the service's
    // frontends, from sock_diag; absent when they could not be listed
    std::optional<std::map<std::pair<uint32_t, uint32_t>, size_t>> live;
    std::string destroy_path;  // how connections are closed: destroy_path_name()
};
nlohmann::json status_json(const Plan& plan, const StatusFacts& facts);
void print_status(const Plan& plan, const StatusFacts& facts, std::ostream& out);

// A backend's failed connections by reason, as the kernel counted them (backend_health).
struct BackendFailures {
    bool remote = false;          // connect-time: `before_data` counts failed handshakes
    uint64_t before_data = 0;     // closed or reset within 1 s having written nothing; failed handshakes
    uint64_t listen_overflows = 0;  // SYNs its full accept queue dropped
};

struct StatsFacts {
    std::map<uint32_t, ServiceCounters> services;  // by service id
    std::map<uint32_t, BackendCounters> backends;  // by backend id: every connection, direct ones too
    // by (service id, backend id): the connections that came through the service's frontends
    std::map<std::pair<uint32_t, uint32_t>, BackendCounters> routes;
    // by backend id: what its closed connections measured, and its failures by reason
    std::map<uint32_t, BackendSli> sli;
    std::map<uint32_t, BackendFailures> failures;

    // Zero counters for what the facts do not hold.
    ServiceCounters service(uint32_t service_id) const;
    BackendCounters route(uint32_t service_id, uint32_t backend_id) const;
    BackendCounters backend(uint32_t backend_id) const;
    BackendSli backend_sli(uint32_t backend_id) const;
    BackendFailures backend_failures(uint32_t backend_id) const;
};
nlohmann::json stats_json(const Plan& plan, const StatsFacts& facts);
void print_stats(const Plan& plan, const StatsFacts& facts, std::ostream& out);

// Aligns rows into columns separated by two spaces.
class TextTable {
   public:
    void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
    void print(std::ostream& out, const std::string& indent = "") const;

   private:
    std::vector<std::vector<std::string>> rows_;
};

std::string percent(double fraction);  // 0.2 -> "20.0%"

}  // namespace tcpshift
