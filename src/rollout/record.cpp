#include "rollout/record.h"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/file.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "base/files.h"
#include "dataplane/pins.h"

namespace tcpshift {

namespace {

using json = nlohmann::json;

constexpr int kRecordVersion = 1;

constexpr const char* kPhaseNames[] = {"running", "paused", "promoted", "aborted", "stopped"};

json figures_json(const std::map<std::string, SubsetFigures>& figures) {
    json out = json::object();
    for (const auto& [name, f] : figures)
        out[name] = {{"connections", f.connections},
                     {"failures", f.failures},
                     {"rtt_count", f.rtt_count},
                     {"rtt_sum_us", f.rtt_sum_us},
                     {"closed", f.closed},
                     {"unanswered", f.unanswered}};
    return out;
}

std::map<std::string, SubsetFigures> figures_from(const json& doc) {
    std::map<std::string, SubsetFigures> out;
    for (const auto& [name, f] : doc.items())
        out[name] = {.connections = f.at("connections").get<uint64_t>(),
                     .failures = f.at("failures").get<uint64_t>(),
                     .rtt_count = f.at("rtt_count").get<uint64_t>(),
                     .rtt_sum_us = f.at("rtt_sum_us").get<uint64_t>(),
                     .closed = f.value("closed", uint64_t{0}),
                     .unanswered = f.value("unanswered", uint64_t{0})};
    return out;
}

json spec_json(const RolloutSpec& s) {
    return {{"service", s.service},           {"to", s.canary},
            {"steps", s.steps},               {"interval_ms", s.interval_ms},
            {"max_failure_rate", s.max_failure_rate}, {"max_rtt_increase", s.max_rtt_increase},
            {"rtt_slack_us", s.rtt_slack_us}, {"min_connections", s.min_connections},
            {"max_wait_ms", s.max_wait_ms}};
}

RolloutSpec spec_from(const json& d) {
    return {.service = d.at("service").get<std::string>(),
            .canary = d.at("to").get<std::string>(),
            .steps = d.at("steps").get<std::vector<uint32_t>>(),
            .interval_ms = d.at("interval_ms").get<uint64_t>(),
            .max_failure_rate = d.at("max_failure_rate").get<double>(),
            .max_rtt_increase = d.at("max_rtt_increase").get<double>(),
            .rtt_slack_us = d.at("rtt_slack_us").get<uint64_t>(),
            .min_connections = d.at("min_connections").get<uint64_t>(),
            .max_wait_ms = d.value("max_wait_ms", uint64_t{0})};
}

RolloutPhase phase_from(const std::string& name) {
    for (size_t i = 0; i < std::size(kPhaseNames); ++i)
        if (name == kPhaseNames[i]) return static_cast<RolloutPhase>(i);
    throw std::invalid_argument("unknown phase \"" + name + "\"");
}

}  // namespace

const char* phase_name(RolloutPhase phase) { return kPhaseNames[static_cast<size_t>(phase)]; }

bool finished(RolloutPhase phase) {
    return phase == RolloutPhase::kPromoted || phase == RolloutPhase::kAborted || phase == RolloutPhase::kStopped;
}

json record_json(const RolloutRecord& r) {
    json timeline = json::array();
    for (const auto& p : r.timeline)
        timeline.push_back({{"t_ms", p.t_ms}, {"weights", p.weights}, {"totals", figures_json(p.totals)}});
    json notes = json::array();
    for (const auto& n : r.notes) notes.push_back({{"t_ms", n.t_ms}, {"kind", n.kind}, {"text", n.text}});
    return {{"version", kRecordVersion},
            {"spec", spec_json(r.spec)},
            {"start_weights", r.start_weights},
            {"origin", figures_json(r.origin)},
            {"step", r.step},
            {"step_applied", r.step_applied},
            {"aborting", r.aborting},
            {"agent", r.agent},
            {"phase", phase_name(r.phase)},
            {"pid", r.pid},
            {"started_unix_ms", r.started_unix_ms},
            {"step_started_ms", r.step_started_ms},
            {"live", r.live},
            {"failed_gate", r.failed_gate},
            {"outcome", r.outcome},
            {"timeline", timeline},
            {"notes", notes}};
}

Result<RolloutRecord> record_from_json(const json& d) {
    try {
        if (d.at("version").get<int>() != kRecordVersion)
            return fail(config_error("rollout record: version " + d.at("version").dump() + ", this tcpshift reads " +
                                     std::to_string(kRecordVersion)));
        RolloutRecord r{.spec = spec_from(d.at("spec")),
                        .start_weights = d.at("start_weights").get<std::map<std::string, uint32_t>>(),
                        .origin = figures_from(d.at("origin")),
                        .step = d.at("step").get<size_t>(),
                        .step_applied = d.at("step_applied").get<bool>(),
                        .aborting = d.value("aborting", false),
                        .agent = d.value("agent", false),
                        .phase = phase_from(d.at("phase").get<std::string>()),
                        .pid = d.at("pid").get<int>(),
                        .started_unix_ms = d.at("started_unix_ms").get<uint64_t>(),
                        .step_started_ms = d.at("step_started_ms").get<uint64_t>(),
                        .live = d.at("live").get<std::string>(),
                        .failed_gate = d.at("failed_gate").get<std::string>(),
                        .outcome = d.at("outcome").get<std::string>()};
        for (const auto& p : d.at("timeline"))
            r.timeline.push_back({.t_ms = p.at("t_ms").get<uint64_t>(),
                                  .weights = p.at("weights").get<std::map<std::string, uint32_t>>(),
                                  .totals = figures_from(p.at("totals"))});
        for (const auto& n : d.at("notes"))
            r.notes.push_back({.t_ms = n.at("t_ms").get<uint64_t>(),
                               .kind = n.at("kind").get<std::string>(),
                               .text = n.at("text").get<std::string>()});
        if (auto ok = check_spec(r.spec); !ok) return fail(ok.error());
        for (size_t i = 0; i < r.spec.steps.size(); ++i)
            if (r.spec.steps[i] < 1 || r.spec.steps[i] > 100 || (i && r.spec.steps[i] <= r.spec.steps[i - 1]))
                return fail(config_error("rollout record: steps must rise from 1 to 100"));
        if (r.step >= r.spec.steps.size()) return fail(config_error("rollout record: step " + std::to_string(r.step) +
                                                                    " is past its " + std::to_string(r.spec.steps.size()) + " steps"));
        return r;
    } catch (const std::exception& e) {
        return fail(config_error(std::string("rollout record: ") + e.what()));
    }
}

std::string record_path(uint64_t netns_inode, const std::string& service) {
    return std::string(kStateRoot) + "/" + std::to_string(netns_inode) + "/rollouts/" + service + ".json";
}

std::string control_path(uint64_t netns_inode, const std::string& service) {
    return std::string(kStateRoot) + "/" + std::to_string(netns_inode) + "/rollouts/" + service + ".control";
}

namespace {

// The record's directory, made as needed, and the file replaced whole.
Result<void> write_whole(const std::string& path, const std::string& text) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    if (ec) return fail(system_error("create the directory of " + path, ec.value()));
    return replace_file(path, text, 0644);
}

}  // namespace

Result<void> save_record(const std::string& path, const RolloutRecord& record) {
    return write_whole(path, record_json(record).dump() + "\n");
}

Result<std::optional<RolloutRecord>> load_record(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        if (errno == ENOENT) return std::optional<RolloutRecord>();
        return fail(system_error("open " + path, errno));
    }
    std::stringstream text;
    text << in.rdbuf();
    const json doc = json::parse(text.str(), nullptr, false);
    if (doc.is_discarded()) return fail(config_error(path + ": not JSON; remove it to start over"));
    auto record = record_from_json(doc);
    if (!record) return fail(config_error(path + ": " + record.error().message));
    return std::optional<RolloutRecord>(std::move(*record));
}

Result<void> send_control(const std::string& path, const std::string& request) {
    return write_whole(path, request + "\n");
}

std::optional<std::string> take_control(const std::string& path) {
    // Renamed first, so that a request written while this one is read is not lost with it.
    const std::string taken = path + ".taken";
    if (::rename(path.c_str(), taken.c_str()) != 0) return std::nullopt;
    std::ifstream in(taken);
    std::string request;
    std::getline(in, request);
    ::unlink(taken.c_str());
    return request;
}

void clear_control(const std::string& path) { ::unlink(path.c_str()); }

std::string lock_path(uint64_t netns_inode, const std::string& service) {
    return std::string(kStateRoot) + "/" + std::to_string(netns_inode) + "/rollouts/" + service + ".lock";
}

Result<Fd> take_runner_lock(const std::string& path) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    if (ec) return fail(system_error("create the directory of " + path, ec.value()));
    Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) return fail(system_error("open " + path, errno));
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return fail(system_error("flock " + path, errno));
    return fd;
}

bool runner_holds(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return false;
    return ::flock(fd.get(), LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
}

}  // namespace tcpshift
