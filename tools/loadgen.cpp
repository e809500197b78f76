// tcpshift-loadgen: opens, talks and closes tcp-echo connections at full speed from many
// concurrent clients, optionally keeping long-lived ones that echo on an interval, and
// counts every failure exactly. It prints one JSON summary on stdout.
//
//   tcpshift-loadgen --target 127.0.0.1:31400 [--netns NAME] [--concurrency 8]
//                    [--duration-ms 3000 | --connections 10000] [--long-lived 50 --interval-ms 100]
//
// A reply is right when it is "WORD LINE" for the line sent; WORD (the backend's prefix) is
// tallied in by_reply. A long-lived connection that answers with another WORD than its first
// reply has moved to another backend, and is counted in long_lived.moved.
#include <fcntl.h>
#include <sched.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "echo_client.h"
#include "base/netns.h"

namespace {

using namespace tcpshift;
using Clock = std::chrono::steady_clock;

struct Counts {
    uint64_t ok = 0;
    std::map<std::string, uint64_t> by_reply;
    std::map<std::string, uint64_t> failures;
    std::vector<std::string> first_errors;
    std::vector<uint32_t> latency_us;

    void failure(const EchoResult& r) {
        ++failures[failure_name(r.failure)];
        if (first_errors.size() < 5) first_errors.push_back(r.error);
    }
    void merge(const Counts& other) {
        ok += other.ok;
        for (const auto& [k, v] : other.by_reply) by_reply[k] += v;
        for (const auto& [k, v] : other.failures) failures[k] += v;
        for (const auto& e : other.first_errors)
            if (first_errors.size() < 5) first_errors.push_back(e);
        latency_us.insert(latency_us.end(), other.latency_us.begin(), other.latency_us.end());
    }
};

// The backend word of a right reply, or empty when the reply is wrong.
std::string reply_word(const std::string& reply, const std::string& line) {
    const auto space = reply.find(' ');
    if (space == std::string::npos || reply.compare(space + 1, std::string::npos, line) != 0) return "";
    return reply.substr(0, space);
}

uint32_t percentile(std::vector<uint32_t>& v, double p) {
    if (v.empty()) return 0;
    const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return v[k];
}

}  // namespace

int main(int argc, char** argv) {
    std::string target_text, netns, line = "hello";
    unsigned concurrency = 8, long_lived = 0;
    uint64_t connections = 0, duration_ms = 0, interval_ms = 100, timeout_ms = 2000;
    CLI::App app{"tcp-echo load generator: counts every failure exactly; prints a JSON summary", "tcpshift-loadgen"};
    app.add_option("-t,--target", target_text, "ADDRESS:PORT to connect to")->required();
    app.add_option("--netns", netns, "network namespace to run in (name under /var/run/netns, or a path)");
    app.add_option("-c,--concurrency", concurrency, "clients opening connections at once")->capture_default_str();
    app.add_option("-n,--connections", connections, "stop after this many short connections");
    app.add_option("-d,--duration-ms", duration_ms, "stop after this long");
    app.add_option("--long-lived", long_lived, "connections opened first and kept, echoing every interval")
        ->capture_default_str();
    app.add_option("--interval-ms", interval_ms, "echo interval of long-lived connections")->capture_default_str();
    app.add_option("--timeout-ms", timeout_ms, "bound on every connect and read")->capture_default_str();
    app.add_option("--line", line, "the line each exchange sends")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    if (connections == 0 && duration_ms == 0) {
        std::cerr << "tcpshift-loadgen: give --connections or --duration-ms\n";
        return 2;
    }
    auto target = parse_endpoint(target_text);
    if (!target) {
        std::cerr << "tcpshift-loadgen: --target " << target_text << ": " << target.error().message << "\n";
        return 2;
    }
    // Threads started after this inherit the namespace.
    std::optional<ScopedNetns> scope;
    if (!netns.empty()) {
        auto entered = ScopedNetns::enter(netns);
        if (!entered) {
            std::cerr << "tcpshift-loadgen: " << entered.error().message << "\n";
            return 1;
        }
        scope.emplace(std::move(*entered));
    }
    const auto timeout = std::chrono::milliseconds(timeout_ms);

    // Long-lived connections: opened before the load, each remembering its first backend.
    std::atomic<bool> stop{false};
    std::vector<EchoConnection> kept;
    std::vector<std::string> kept_word;
    Counts kept_counts;
    uint64_t kept_open_failures = 0, moved = 0;
    for (unsigned i = 0; i < long_lived; ++i) {
        EchoResult failure;
        EchoConnection c = EchoConnection::open(*target, timeout, &failure);
        if (!c.connected()) {
            ++kept_open_failures;
            kept_counts.failure(failure);
            continue;
        }
        const EchoResult r = c.exchange(line, timeout);
        const std::string word = r.ok ? reply_word(r.reply, line) : "";
        if (word.empty()) {
            ++kept_open_failures;
            kept_counts.failure(r.ok ? EchoResult{.error = "wrong reply \"" + r.reply + "\"",
                                                  .failure = EchoFailure::kWrongReply}
                                     : r);
            continue;
        }
        kept.push_back(std::move(c));
        kept_word.push_back(word);
    }
    std::thread keeper([&] {
        while (!stop) {
            const auto next = Clock::now() + std::chrono::milliseconds(interval_ms);
            for (size_t i = 0; i < kept.size(); ++i) {
                if (!kept[i].connected()) continue;
                const EchoResult r = kept[i].exchange(line, timeout);
                const std::string word = r.ok ? reply_word(r.reply, line) : "";
                if (!r.ok) {
                    kept_counts.failure(r);
                    kept[i] = EchoConnection();
                } else if (word.empty()) {
                    kept_counts.failure(EchoResult{.error = "wrong reply \"" + r.reply + "\"",
                                                   .failure = EchoFailure::kWrongReply});
                } else {
                    ++kept_counts.ok;
                    if (word != kept_word[i]) ++moved;
                }
            }
            std::this_thread::sleep_until(next);
        }
    });

    const auto start = Clock::now();
    const auto end = duration_ms ? start + std::chrono::milliseconds(duration_ms) : Clock::time_point::max();
    std::atomic<uint64_t> issued{0};
    std::vector<Counts> per_thread(concurrency);
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < concurrency; ++t) {
        workers.emplace_back([&, t] {
            Counts& c = per_thread[t];
            while (Clock::now() < end && (connections == 0 || issued++ < connections)) {
                const auto begin = Clock::now();
                const EchoResult r = echo_once(*target, line, timeout);
                const std::string word = r.ok ? reply_word(r.reply, line) : "";
                if (!r.ok) {
                    c.failure(r);
                } else if (word.empty()) {
                    c.failure(EchoResult{.error = "wrong reply \"" + r.reply + "\"", .failure = EchoFailure::kWrongReply});
                } else {
                    ++c.ok;
                    ++c.by_reply[word];
                    if (c.latency_us.size() < 1000000)
                        c.latency_us.push_back(static_cast<uint32_t>(
                            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - begin).count()));
                }
            }
        });
    }
    for (auto& w : workers) w.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    stop = true;
    keeper.join();

    Counts total;
    for (const auto& c : per_thread) total.merge(c);
    uint64_t failed = 0;
    for (const auto& [k, v] : total.failures) failed += v;
    uint64_t kept_failed = 0;
    for (const auto& [k, v] : kept_counts.failures) kept_failed += v;
    nlohmann::json summary = {
        {"target", target->str()},
        {"connections", total.ok + failed},
        {"ok", total.ok},
        {"failed", failed},
        {"failures", total.failures},
        {"first_errors", total.first_errors},
        {"by_reply", total.by_reply},
        {"duration_s", seconds},
        {"connections_per_s", seconds > 0 ? (total.ok + failed) / seconds : 0},
        {"latency_us", {{"p50", percentile(total.latency_us, 0.50)}, {"p99", percentile(total.latency_us, 0.99)}}},
        {"long_lived",
         {{"requested", long_lived},
          {"opened", kept.size()},
          {"open_failures", kept_open_failures},
          {"echoes", kept_counts.ok},
          {"failed", kept_failed},
          {"failures", kept_counts.failures},
          {"first_errors", kept_counts.first_errors},
          {"moved", moved}}},
    };
    std::cout << summary.dump() << std::endl;
    return 0;
}
