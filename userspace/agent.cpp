#include "tcpshift/agent.h"

#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "tcpshift/apply.h"
#include "tcpshift/dataplane.h"
#include "tcpshift/listeners.h"
#include "tcpshift/local_routes.h"
#include "tcpshift/metrics.h"
#include "tcpshift/pins.h"

namespace tcpshift {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kDebounce = std::chrono::milliseconds(200);
constexpr auto kAdoptEvery = std::chrono::seconds(1);
constexpr std::chrono::milliseconds kLockPatience{10000};
constexpr const char* kConfigMapData = "..data";  // Kubernetes' atomic writer switches this symlink

// One event per line: time, level, message.
class Log {
   public:
    explicit Log(std::ostream& out) : out_(out) {}
    void operator()(const char* level, const std::string& message) {
        const auto now = std::chrono::system_clock::now();
        const std::time_t t = std::chrono::system_clock::to_time_t(now);
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
        std::tm tm{};
        gmtime_r(&t, &tm);
        char stamp[32];
        std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        std::lock_guard lock(mutex_);
        out_ << stamp << "." << std::setw(3) << std::setfill('0') << ms << "Z " << level << " " << message
             << std::endl;
    }

   private:
    std::ostream& out_;
    std::mutex mutex_;
};

// Lines written by the apply machinery, forwarded to the log at level info.
class LogLines : public std::stringbuf {
   public:
    explicit LogLines(Log& log) : log_(log) {}
    int sync() override {
        std::string text = str();
        size_t start = 0;
        for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
            const std::string line = text.substr(start, nl - start);
            if (line.starts_with("warning: ")) {
                log_("warn", line.substr(9));
            } else {
                log_("info", line);
            }
        }
        str(text.substr(start));
        return 0;
    }

   private:
    Log& log_;
};

// The agent's view of the applied set, shared by the main loop (adoption) and the HTTP thread
// (metrics), with the reload counters.
class AppliedView {
   public:
    explicit AppliedView(NetnsId netns) : netns_(netns) {}

    void count_reload(const std::string& result) {
        std::lock_guard lock(mutex_);
        ++reloads_[result];
    }

    // Ready once the first apply has been tried and a data plane serves.
    bool ready() {
        std::lock_guard lock(mutex_);
        return !reloads_.empty() && dataplane_attached(netns_);
    }

    // The applied plan. It is recompiled only when the stored state changed, which also
    // picks up `tcpshift set` run beside the agent.
    Result<std::shared_ptr<const Plan>> plan() {
        std::lock_guard lock(mutex_);
        return refreshed_plan();
    }

    Result<std::string> render() {
        std::lock_guard lock(mutex_);
        auto plan = refreshed_plan();
        if (!plan) return fail(plan.error());
        MetricsFacts facts{.reloads = reloads_};
        if (dataplane_attached(netns_)) {
            auto maps = open_dataplane(netns_);
            if (!maps) return fail(maps.error());
            auto stats = collect_stats(*maps, **plan);
            if (!stats) return fail(stats.error());
            facts.stats = std::move(*stats);
            auto ready = ready_backends(*maps, **plan, netns_);
            if (!ready) return fail(ready.error());
            facts.ready.insert(ready->begin(), ready->end());
        }
        return render_metrics(**plan, facts);
    }

   private:
    Result<std::shared_ptr<const Plan>> refreshed_plan() {
        struct stat st {};
        const std::string state_file = state_dir(netns_.inode) + "/applied.json";
        const int64_t mtime =
            ::stat(state_file.c_str(), &st) == 0 ? st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec : 0;
        if (!plan_ || mtime != plan_mtime_) {
            auto applied = load_applied(netns_);
            if (!applied) return fail(applied.error());
            plan_ = std::make_shared<const Plan>(std::move(applied->plan));
            plan_mtime_ = mtime;
        }
        return plan_;
    }

    NetnsId netns_;
    std::mutex mutex_;
    std::shared_ptr<const Plan> plan_;
    int64_t plan_mtime_ = -1;
    std::map<std::string, uint64_t> reloads_;
};

Result<std::pair<std::string, int>> parse_listen_address(const std::string& text) {
    auto ep = parse_endpoint(text);
    if (!ep) return fail(config_error("--metrics-addr: " + ep.error().message));
    return std::pair<std::string, int>{ep->address_str(), ep->port};
}

// Watches the config paths: a directory for any change of its files, a file through its
// directory (editors replace files by rename), filtered by name. Kubernetes updates a
// mounted ConfigMap by renaming a new "..data" symlink over the old one: the files keep their
// names (x.yaml -> ..data/x.yaml) and only ..data changes, so that rename is a change of every
// file in the directory.
class ConfigWatch {
   public:
    static Result<ConfigWatch> start(const std::vector<std::string>& paths) {
        ConfigWatch w;
        w.fd_ = Fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
        if (!w.fd_) return fail(system_error("inotify_init1", errno));
        constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE;
        for (const auto& path : paths) {
            std::error_code ec;
            const bool dir = fs::is_directory(path, ec);
            const std::string watched = dir ? path : fs::absolute(path).parent_path().string();
            const int wd = ::inotify_add_watch(w.fd_.get(), watched.c_str(), kMask);
            if (wd < 0) return fail(system_error("watch " + watched, errno));
            w.watches_[wd].push_back(dir ? "" : fs::path(path).filename().string());
        }
        return w;
    }
    int fd() const { return fd_.get(); }

    // Drains the events; true when one concerns a watched file.
    bool changed() {
        bool relevant = false;
        alignas(inotify_event) char buf[4096];
        ssize_t n;
        while ((n = ::read(fd_.get(), buf, sizeof(buf))) > 0) {
            for (char* p = buf; p < buf + n;) {
                const auto* ev = reinterpret_cast<const inotify_event*>(p);
                const std::string name = ev->len ? ev->name : "";
                relevant = relevant || (ev->mask & IN_Q_OVERFLOW) || name == kConfigMapData;
                if (auto it = watches_.find(ev->wd); it != watches_.end())
                    for (const auto& wanted : it->second)
                        relevant = relevant || (wanted.empty() ? is_config_file_name(name) : name == wanted);
                p += sizeof(inotify_event) + ev->len;
            }
        }
        return relevant;
    }

   private:
    Fd fd_;
    std::map<int, std::vector<std::string>> watches_;  // "" for a whole directory
};

class Agent {
   public:
    Agent(const AgentOptions& options, Log& log) : options_(options), log_(log) {}

    // Applies the config files as the whole applied set. Failures leave the previous set.
    void reload(const Target& target, AppliedView& metrics, const char* why) {
        Diagnostics diag{.strict = options_.strict};
        auto result = apply_whole_set(target, diag);
        for (const auto& w : diag.warnings) log_("warn", w);
        for (const auto& n : diag.notes) log_("info", n);
        if (!result) {
            metrics.count_reload("error");
            log_("error", std::string("reload (") + why + ") failed, the previous configuration keeps serving: " +
                              result.error().message);
            return;
        }
        metrics.count_reload("success");
        std::string summary;
        for (const auto& svc : result->services) {
            summary += (summary.empty() ? "" : "; ") + svc.name + ":";
            for (const auto& subset : svc.subsets) summary += " " + subset.name + " " + std::to_string(subset.weight);
        }
        log_("info", std::string("applied (") + why + "): " + std::to_string(result->services.size()) + " services" +
                         (summary.empty() ? "" : " — " + summary));
    }

    // Adopts listeners that started without passing through sock_ops' view (or before it
    // attached), so readiness stays true to what listens.
    void adopt(const Target& target, AppliedView& source) {
        if (!dataplane_attached(target.netns)) return;
        auto plan = source.plan();
        if (!plan) return;
        auto maps = open_dataplane(target.netns);
        if (!maps) return;
        LogLines lines(log_);
        std::ostream out(&lines);
        auto adopted = adopt_listeners(*maps, **plan, &out);
        out.flush();
        if (!adopted) log_("warn", "adopt listeners: " + adopted.error().message);
    }

    void detach(const Target& target) {
        auto lock = PinLock::acquire(kLockPatience);
        if (!lock) {
            log_("error", "detach on exit: " + lock.error().message);
            return;
        }
        LogLines lines(log_);
        std::ostream out(&lines);
        if (auto state = load_state(target.netns.inode); state) (void)drop_local_routes(state->local_routes, Plan{}, out);
        out.flush();
        if (auto ok = detach_dataplane(target.netns); !ok) {
            log_("error", "detach on exit: " + ok.error().message);
        } else {
            log_("info", "detached: programs, pins and local routes removed");
        }
    }

   private:
    Result<Plan> apply_whole_set(const Target& target, Diagnostics& diag) {
        auto resources = load_resources(options_.config, options_.ns, &diag);
        if (!resources) return fail(resources.error());
        auto lock = PinLock::acquire(kLockPatience);
        if (!lock) return fail(lock.error());
        auto before = load_applied(target.netns);
        if (!before) return fail(before.error());
        auto next = compile_resources(*resources, before->state.ids, &diag, before->limits);
        if (!next) return fail(next.error());
        AppliedState next_state{.ids = before->state.ids, .local_routes = before->state.local_routes};
        merge_resources(next_state, *resources);
        LogLines lines(log_);
        std::ostream out(&lines);
        auto ok = commit(target, *before, next_state, *next, out);
        out.flush();
        if (!ok) return fail(ok.error());
        return next;
    }

    const AgentOptions& options_;
    Log& log_;
};

}  // namespace

Result<void> run_agent(const AgentOptions& options, Streams io) {
    if (::geteuid() != 0)
        return fail(system_error("tcpshift agent: needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN); run it as "
                                 "root or from the systemd unit"));
    if (options.config.empty()) return fail(config_error("agent: --config FILE|DIR is required"));
    auto listen = parse_listen_address(options.metrics_addr);
    if (!listen) return fail(listen.error());
    Log log(io.err);

    // Signals go to a signalfd; block them before any thread starts so none takes them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGHUP);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    Fd signal_fd(::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!signal_fd) return fail(system_error("signalfd", errno));

    // The metrics server binds in the caller's namespace: the host's loopback by default,
    // where Prometheus scrapes, whichever namespace the agent steers.
    httplib::Server server;
    if (!server.bind_to_port(listen->first, listen->second))
        return fail(system_error("metrics: cannot listen on " + options.metrics_addr + " (in use, or not local)"));

    auto target = enter_target(options.target);
    if (!target) return fail(target.error());
    AppliedView metrics(target->netns);
    server.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
        auto text = metrics.render();
        if (!text) {
            res.status = 500;
            res.set_content(text.error().message + "\n", "text/plain");
            return;
        }
        res.set_content(*text, "text/plain; version=0.0.4; charset=utf-8");
    });
    server.Get("/healthz", [&](const httplib::Request&, httplib::Response& res) {
        const bool ready = metrics.ready();
        res.status = ready ? 200 : 503;
        res.set_content(ready ? "ok\n" : "starting, or not attached\n", "text/plain");
    });
    std::thread http([&] { server.listen_after_bind(); });

    auto watch = ConfigWatch::start(options.config);
    if (!watch) {
        server.stop();
        http.join();
        return fail(watch.error());
    }
    log("info", "agent started: network namespace " + std::to_string(target->netns.inode) + ", metrics on http://" +
                    options.metrics_addr + "/metrics");
    Agent agent(options, log);
    agent.reload(*target, metrics, "start");

    constexpr auto kNever = Clock::time_point::max();
    Clock::time_point reload_at = kNever;  // a debounced reload is due then
    auto next_adopt = Clock::now() + kAdoptEvery;
    bool stop = false;
    while (!stop) {
        auto wake = next_adopt;
        if (reload_at < wake) wake = reload_at;
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake - Clock::now()).count();
        pollfd fds[2] = {{signal_fd.get(), POLLIN, 0}, {watch->fd(), POLLIN, 0}};
        ::poll(fds, 2, static_cast<int>(std::max<int64_t>(wait, 0)));
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo info{};
            while (::read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
                if (info.ssi_signo == SIGHUP) {
                    log("info", "SIGHUP: reloading");
                    agent.reload(*target, metrics, "SIGHUP");
                } else {
                    log("info", std::string("signal ") + strsignal(static_cast<int>(info.ssi_signo)) + ": stopping" +
                                    (options.detach_on_exit ? "" : "; the data plane stays pinned and serving"));
                    stop = true;
                }
            }
        }
        if ((fds[1].revents & POLLIN) && watch->changed()) reload_at = Clock::now() + kDebounce;
        if (Clock::now() >= reload_at) {
            reload_at = kNever;
            agent.reload(*target, metrics, "config changed");
        }
        if (Clock::now() >= next_adopt) {
            agent.adopt(*target, metrics);
            next_adopt = Clock::now() + kAdoptEvery;
        }
    }
    server.stop();
    http.join();
    if (options.detach_on_exit) agent.detach(*target);
    return {};
}

}  // namespace tcpshift
