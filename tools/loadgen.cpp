// tcpshift-loadgen: opens, talks and closes tcp-echo connections at full speed from many
// concurrent clients, optionally keeping long-lived ones that echo on an interval, and
// counts every failure exactly. It prints one JSON summary on stdout.
//
//   tcpshift-loadgen --target 127.0.0.1:31400 [--target ...] [--netns NAME] [--concurrency 8]
//                    [--duration-ms 3000 | --connections 10000] [--long-lived 50 --interval-ms 100]
//
// With several targets, each client takes them in turn, one connection each, starting at its
// own index: an even split with no load balancer in between, the baseline of a benchmark.
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
#include <optional>
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

// The backend word of an exchange when its reply is right; otherwise counts the failure in
// `counts` and returns an empty word.
std::string tally(const EchoResult& r, const std::string& line, Counts& counts) {
    const std::string word = r.ok ? reply_word(r.reply, line) : "";
    if (!r.ok) {
        counts.failure(r);
    } else if (word.empty()) {
        counts.failure(EchoResult{.error = "wrong reply \"" + r.reply + "\"", .failure = EchoFailure::kWrongReply});
    }
    return word;
}

uint64_t total_failures(const Counts& counts) {
    uint64_t failed = 0;
    for (const auto& [k, v] : counts.failures) failed += v;
    return failed;
}

// "A" for one target, "A,B" for several.
std::string targets_text(const std::vector<Endpoint>& targets) {
    std::string out;
    for (const auto& t : targets) out += (out.empty() ? "" : ",") + t.str();
    return out;
}

struct Options {
    std::vector<Endpoint> targets;
    std::string netns, line = "hello";
    unsigned concurrency = 8, long_lived = 0;
    uint64_t connections = 0, duration_ms = 0, interval_ms = 100;
    std::chrono::milliseconds timeout{2000};
};

// Parses the command line into `options`; returns the exit status when the program should
// stop here (help, or a usage error).
std::optional<int> parse_options(int argc, char** argv, Options& options) {
    std::vector<std::string> target_texts;
    uint64_t timeout_ms = 2000;
    CLI::App app{"tcp-echo load generator: counts every failure exactly; prints a JSON summary", "tcpshift-loadgen"};
    app.add_option("-t,--target", target_texts, "ADDRESS:PORT to connect to; repeated, taken in turn")->required();
    app.add_option("--netns", options.netns, "network namespace to run in (name under /var/run/netns, or a path)");
    app.add_option("-c,--concurrency", options.concurrency, "clients opening connections at once")
        ->capture_default_str();
    app.add_option("-n,--connections", options.connections, "stop after this many short connections");
    app.add_option("-d,--duration-ms", options.duration_ms, "stop after this long");
    app.add_option("--long-lived", options.long_lived, "connections opened first and kept, echoing every interval")
        ->capture_default_str();
    app.add_option("--interval-ms", options.interval_ms, "echo interval of long-lived connections")
        ->capture_default_str();
    app.add_option("--timeout-ms", timeout_ms, "bound on every connect and read")->capture_default_str();
    app.add_option("--line", options.line, "the line each exchange sends")->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (options.connections == 0 && options.duration_ms == 0) {
        std::cerr << "tcpshift-loadgen: give --connections or --duration-ms\n";
        return 2;
    }
    for (const auto& text : target_texts) {
        auto target = parse_endpoint(text);
        if (!target) {
            std::cerr << "tcpshift-loadgen: --target " << text << ": " << target.error().message << "\n";
            return 2;
        }
        options.targets.push_back(*target);
    }
    options.timeout = std::chrono::milliseconds(timeout_ms);
    return std::nullopt;
}

// Long-lived connections: opened before the load, each remembering its first backend, then
// echoing every interval on a thread of their own until stop().
class LongLived {
   public:
    explicit LongLived(const Options& options) : options_(options) {}

    void open() {
        for (unsigned i = 0; i < options_.long_lived; ++i) {
            EchoResult failure;
            const Endpoint& target = options_.targets[i % options_.targets.size()];
            EchoConnection c = EchoConnection::open(target, options_.timeout, &failure);
            if (!c.connected()) {
                ++open_failures_;
                counts_.failure(failure);
                continue;
            }
            const std::string word = tally(c.exchange(options_.line, options_.timeout), options_.line, counts_);
            if (word.empty()) {
                ++open_failures_;
                continue;
            }
            kept_.push_back(std::move(c));
            first_word_.push_back(word);
        }
        keeper_ = std::thread([this] { keep(); });
    }

    void stop() {
        stop_ = true;
        keeper_.join();
    }

    nlohmann::json summary() const {
        return {{"requested", options_.long_lived},
                {"opened", kept_.size()},
                {"open_failures", open_failures_},
                {"echoes", counts_.ok},
                {"failed", total_failures(counts_)},
                {"failures", counts_.failures},
                {"first_errors", counts_.first_errors},
                {"moved", moved_}};
    }

   private:
    void keep() {
        while (!stop_) {
            const auto next = Clock::now() + std::chrono::milliseconds(options_.interval_ms);
            for (size_t i = 0; i < kept_.size(); ++i) {
                if (!kept_[i].connected()) continue;
                const EchoResult r = kept_[i].exchange(options_.line, options_.timeout);
                const std::string word = tally(r, options_.line, counts_);
                if (!r.ok) {
                    kept_[i] = EchoConnection();
                } else if (!word.empty()) {
                    ++counts_.ok;
                    if (word != first_word_[i]) ++moved_;
                }
            }
            std::this_thread::sleep_until(next);
        }
    }

    const Options& options_;
    std::atomic<bool> stop_{false};
    std::thread keeper_;
    std::vector<EchoConnection> kept_;
    std::vector<std::string> first_word_;
    Counts counts_;
    uint64_t open_failures_ = 0, moved_ = 0;
};

// One client of the load: short connections, one exchange each, to the targets in turn from
// the client's own index, until the deadline or until `issued` reaches the limit.
void run_client(const Options& options, unsigned index, Clock::time_point end, std::atomic<uint64_t>& issued,
                Counts& c) {
    for (size_t turn = index; Clock::now() < end && (options.connections == 0 || issued++ < options.connections);
         ++turn) {
        const Endpoint& target = options.targets[turn % options.targets.size()];
        const auto begin = Clock::now();
        const std::string word = tally(echo_once(target, options.line, options.timeout), options.line, c);
        if (word.empty()) continue;
        ++c.ok;
        ++c.by_reply[word];
        if (c.latency_us.size() < 1000000)
            c.latency_us.push_back(static_cast<uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - begin).count()));
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    if (auto status = parse_options(argc, argv, options)) return *status;
    // Threads started after this inherit the namespace.
    std::optional<ScopedNetns> scope;
    if (!options.netns.empty()) {
        auto entered = ScopedNetns::enter(options.netns);
        if (!entered) {
            std::cerr << "tcpshift-loadgen: " << entered.error().message << "\n";
            return 1;
        }
        scope.emplace(std::move(*entered));
    }
    LongLived long_lived(options);
    long_lived.open();

    const auto start = Clock::now();
    const auto end =
        options.duration_ms ? start + std::chrono::milliseconds(options.duration_ms) : Clock::time_point::max();
    std::atomic<uint64_t> issued{0};
    std::vector<Counts> per_thread(options.concurrency);
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < options.concurrency; ++t)
        workers.emplace_back([&, t] { run_client(options, t, end, issued, per_thread[t]); });
    for (auto& w : workers) w.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    long_lived.stop();

    Counts total;
    for (const auto& c : per_thread) total.merge(c);
    const uint64_t failed = total_failures(total);
    nlohmann::json summary = {
        {"target", targets_text(options.targets)},
        {"connections", total.ok + failed},
        {"ok", total.ok},
        {"failed", failed},
        {"failures", total.failures},
        {"first_errors", total.first_errors},
        {"by_reply", total.by_reply},
        {"duration_s", seconds},
        {"connections_per_s", seconds > 0 ? (total.ok + failed) / seconds : 0},
        {"latency_us", {{"p50", percentile(total.latency_us, 0.50)}, {"p99", percentile(total.latency_us, 0.99)}}},
        {"long_lived", long_lived.summary()},
    };
    std::cout << summary.dump() << std::endl;
    return 0;
}
