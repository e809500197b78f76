// The agent as a service: reloads that follow the file with no failed connection, a bad file
// that leaves the old split serving, kill -9 under load, exact metrics, and a real Prometheus;
// one agent per namespace and per metrics address, writers beside it, ConfigMap updates, a
// prompt SIGTERM, and the systemd unit's capabilities.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "client.h"
#include "netns_fixture.h"
#include "stats.h"
#include "base/fd.h"
#include "dataplane/pins.h"

namespace tcpshift::testing {
namespace {

namespace fs = std::filesystem;

std::string config(int v1, int v2) { return tcp_echo_config(v1, v2); }

// Writes a file the way editors and config management do: a temporary file renamed over it.
void replace_file(const fs::path& path, const std::string& text) {
    const fs::path tmp = path.string() + ".tmp~";
    std::ofstream(tmp) << text;
    fs::rename(tmp, path);
}

// Runs echo clients in the namespace until stopped, counting every failure.
class Load {
   public:
    explicit Load(const std::string& netns) {
        thread_ = std::thread([this, netns] {
            auto scope = ScopedNetns::enter(netns);
            if (!scope) return;
            while (!stop_) {
                const EchoResult r = echo_once(endpoint("127.0.0.1:31400"), "hello", std::chrono::seconds(3));
                ++(r.ok ? ok_ : failed_);
                if (!r.ok && first_error_.empty()) first_error_ = r.error;
            }
        });
    }
    ~Load() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    uint64_t ok() const { return ok_; }
    uint64_t failed() const { return failed_; }
    const std::string& first_error() const { return first_error_; }

   private:
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> ok_{0}, failed_{0};
    std::string first_error_;
    std::thread thread_;
};

class AgentTest : public NetnsTest {
   protected:
    void SetUp() override {
        NetnsTest::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        dir_ = fs::path(write_temp_file("agent-dir", "")).parent_path() / ("agent-" + netns());
        fs::create_directories(dir_);
        log_ = (dir_ / "agent.log").string();
        v1_ = start_echo(netns(), "127.0.0.1:9001", "one");
        v2_ = start_echo(netns(), "127.0.0.1:9002", "two");
    }

    void TearDown() override {
        agent_.stop(SIGKILL);  // before the namespace it serves goes away
        NetnsTest::TearDown();
    }

    void start_agent(const std::vector<std::string>& extra = {}) {
        port_ = free_port();
        bool healthy = false;
        agent_ = tcpshift::testing::start_agent(netns(), dir_.string(), port_, log_, extra, &healthy);
        ASSERT_TRUE(healthy) << agent_log();
    }

    std::string metrics() { return http_get(port_, "/metrics").body; }
    double metric(const std::string& series) { return metric_value(metrics(), series); }

    template <typename F>
    bool wait_for(F condition, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            if (condition()) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }

    std::string agent_log() {
        std::ifstream in(log_);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    void expect_split(double w1, double w2) {
        auto in = enter();
        const Tally t = tally(endpoint("127.0.0.1:31400"), 2000);
        ASSERT_EQ(t.failures, 0u) << t.str() << "\n" << tcpshift_here({"stats"}).out;
        const SplitVerdict v = chi_square_split({t["one"], t["two"]}, {w1, w2});
        EXPECT_GE(v.p_value, kAlpha) << w1 << "/" << w2 << " rejected: " << t.str() << "\n" << v.table;
    }

    fs::path dir_;
    std::string log_;
    int port_ = 0;
    Child v1_, v2_, agent_;
};

const std::string kWeightV1 = R"(tcpshift_weight{service="tcp-echo",subset="v1"})";
const std::string kReloadOk = R"(tcpshift_config_reloads_total{result="success"})";
const std::string kReloadError = R"(tcpshift_config_reloads_total{result="error"})";

TEST_F(AgentTest, AnEditedFileShiftsTheSplitWithNoFailedConnection) {
    replace_file(dir_ / "tcp-echo.yaml", config(50, 50));
    start_agent();
    expect_split(50, 50);
    {
        Load load(netns());
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        replace_file(dir_ / "tcp-echo.yaml", config(20, 80));
        ASSERT_TRUE(wait_for([&] { return metric(kWeightV1) == 20; })) << agent_log();
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        load.stop();
        EXPECT_GT(load.ok(), 0u);
        EXPECT_EQ(load.failed(), 0u) << load.first_error();
    }
    expect_split(20, 80);
    EXPECT_NE(agent_log().find(" info applied (config changed): 1 services"), std::string::npos) << agent_log();
}

// The agent reads its directory as `apply -f DIR` does: its files by name, a later definition
// of a resource replacing an earlier one, and the note in its log.
TEST_F(AgentTest, ALaterFileOfTheDirectoryReplacesAnEarlierDefinition) {
    replace_file(dir_ / "20-shift.yaml", config(20, 80));
    replace_file(dir_ / "10-tcp-echo.yaml", config(50, 50));
    start_agent();
    ASSERT_TRUE(wait_for([&] { return metric(kWeightV1) == 20; })) << agent_log();
    expect_split(20, 80);
    const std::string note = " info " + (dir_ / "20-shift.yaml").string() +
                             ":1: TrafficShift \"tcp-echo\" in namespace default replaces the one at " +
                             (dir_ / "10-tcp-echo.yaml").string() + ":1 (a directory's files apply in name order";
    EXPECT_NE(agent_log().find(note), std::string::npos) << agent_log();
}

TEST_F(AgentTest, AnInvalidFileIsLoggedCountedAndTheOldSplitKeepsServing) {
    replace_file(dir_ / "tcp-echo.yaml", config(20, 80));
    start_agent();
    replace_file(dir_ / "broken.yaml", "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nspec: [\n");
    ASSERT_TRUE(wait_for([&] { return metric(kReloadError) == 1; })) << agent_log();
    EXPECT_NE(agent_log().find(" error reload (config changed) failed, the previous configuration keeps serving: " +
                               (dir_ / "broken.yaml").string()),
              std::string::npos)
        << agent_log();
    EXPECT_EQ(metric(kWeightV1), 20);
    expect_split(20, 80);
    // SIGHUP retries; still invalid, still counted.
    ::kill(agent_.pid(), SIGHUP);
    ASSERT_TRUE(wait_for([&] { return metric(kReloadError) == 2; })) << agent_log();
}

TEST_F(AgentTest, KillNineUnderLoadFailsNothingAndCountersContinue) {
    replace_file(dir_ / "tcp-echo.yaml", config(50, 50));
    start_agent();
    const std::string opened_v1 =
        R"(istio_tcp_connections_opened_total{reporter="destination",destination_service="tcp-echo",destination_version="v1",destination_workload="127.0.0.1:9001"})";
    Load load(netns());
    ASSERT_TRUE(wait_for([&] { return metric(opened_v1) > 20; }));
    const double before = metric(opened_v1);
    agent_.stop(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const uint64_t served_without_agent = load.ok();
    start_agent();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    load.stop();
    EXPECT_EQ(load.failed(), 0u) << load.first_error();
    EXPECT_GT(load.ok(), served_without_agent) << "traffic flowed while the agent was down and after";
    EXPECT_GT(metric(opened_v1), before) << "the restarted agent continues the pinned counters";
}

TEST_F(AgentTest, MetricsCountConnectionsAndBytesExactly) {
    replace_file(dir_ / "tcp-echo.yaml", config(100, 0));
    start_agent();
    constexpr int kConnections = 300;
    const std::string line(99, 'x');  // with the newline, 100 bytes a connection
    {
        auto in = enter();
        for (int i = 0; i < kConnections; ++i) {
            const EchoResult r = echo_once(endpoint("127.0.0.1:31400"), line);
            ASSERT_TRUE(r.ok) << r.error;
            ASSERT_EQ(r.reply, "one " + line);
        }
    }
    const std::string v1 =
        R"({reporter="destination",destination_service="tcp-echo",destination_version="v1",destination_workload="127.0.0.1:9001"})";
    ASSERT_TRUE(wait_for([&] { return metric("istio_tcp_connections_closed_total" + v1) == kConnections; }))
        << metrics();
    const std::string text = metrics();
    EXPECT_EQ(metric_value(text, "istio_tcp_connections_opened_total" + v1), kConnections);
    EXPECT_EQ(metric_value(text, "istio_tcp_received_bytes_total" + v1), kConnections * 100);
    EXPECT_EQ(metric_value(text, "istio_tcp_sent_bytes_total" + v1), kConnections * 104) << "\"one \" + 100 bytes";
    EXPECT_EQ(metric_value(text, R"(tcpshift_connections_active{service="tcp-echo",subset="v1",backend="127.0.0.1:9001"})"),
              0);
    // `tcpshift stats` reads the same numbers without the agent.
    const auto stats = tcpshift_here({"stats", "--json"});
    ASSERT_EQ(stats.exit_code, 0) << stats.err;
    EXPECT_NE(stats.out.find("\"bytes_received\": " + std::to_string(kConnections * 100)), std::string::npos)
        << stats.out;
}

TEST_F(AgentTest, SigtermLeavesTheDataPlaneServingUnlessDetachOnExit) {
    replace_file(dir_ / "tcp-echo.yaml", config(50, 50));
    start_agent();
    const int status = agent_.stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << agent_log();
    EXPECT_NE(agent_log().find("stopping; the data plane stays pinned and serving"), std::string::npos) << agent_log();
    expect_split(50, 50);

    start_agent({"--detach-on-exit"});
    agent_.stop(SIGTERM);
    EXPECT_NE(agent_log().find("detached: programs, pins and local routes removed"), std::string::npos) << agent_log();
    const auto status_json = tcpshift_here({"status", "--json"});
    EXPECT_NE(status_json.out.find("\"attached\": false"), std::string::npos) << status_json.out;
}

TEST_F(AgentTest, ReadinessFollowsTheBackendWithinASecond) {
    replace_file(dir_ / "tcp-echo.yaml", config(50, 50));
    start_agent();
    const std::string ready_v2 = R"(tcpshift_backend_ready{service="tcp-echo",subset="v2",backend="127.0.0.1:9002"})";
    ASSERT_EQ(metric(ready_v2), 1) << metrics();
    v2_.stop(SIGKILL);
    EXPECT_TRUE(wait_for([&] { return metric(ready_v2) == 0; }, std::chrono::seconds(1)));
    v2_ = start_echo(netns(), "127.0.0.1:9002", "two");
    EXPECT_TRUE(wait_for([&] { return metric(ready_v2) == 1; }, std::chrono::seconds(1)));
}

TEST_F(AgentTest, APrometheusServerScrapesTheSplit) {
    if (!fs::exists("/usr/bin/prometheus")) GTEST_FAIL() << "prometheus is not installed; scripts/setup.sh installs it";
    replace_file(dir_ / "tcp-echo.yaml", config(20, 80));
    start_agent();
    Tally sent;
    {
        auto in = enter();
        sent = tally(endpoint("127.0.0.1:31400"), 1000);
        ASSERT_EQ(sent.failures, 0u);
    }
    const int prom_port = free_port();
    const fs::path prom_dir = dir_ / "prometheus";
    fs::create_directories(prom_dir);
    std::ofstream(prom_dir / "prometheus.yml")
        << "global: {scrape_interval: 1s}\nscrape_configs:\n- job_name: tcpshift\n  static_configs:\n"
        << "  - targets: ['127.0.0.1:" << port_ << "']\n";
    Child prometheus = Child::start(
        "", {"/usr/bin/prometheus", "--config.file=" + (prom_dir / "prometheus.yml").string(),
             "--storage.tsdb.path=" + (prom_dir / "data").string(),
             "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
        std::chrono::milliseconds(0), (prom_dir / "prometheus.log").string());
    const std::string query =
        "/api/v1/query?query=sum%20by%20(destination_version)%20(istio_tcp_connections_opened_total)";
    std::string body;
    const bool answered = wait_for(
        [&] {
            body = http_get(prom_port, query).body;
            return body.find("\"v1\"") != std::string::npos && body.find("\"v2\"") != std::string::npos;
        },
        std::chrono::seconds(30));
    ASSERT_TRUE(answered) << body;
    // The query's vector, parsed: {"data": {"result": [{"metric": {"destination_version": "v1"},
    // "value": [TIME, "COUNT"]}, ...]}}; each subset's value must be exactly what it answered.
    const auto reply = nlohmann::json::parse(body, nullptr, false);
    ASSERT_TRUE(reply.is_object()) << body;
    std::map<std::string, uint64_t> scraped;
    for (const auto& series : reply["data"]["result"])
        scraped[series["metric"]["destination_version"].get<std::string>()] =
            std::stoull(series["value"][1].get<std::string>());
    EXPECT_EQ(scraped.size(), 2u) << body;
    EXPECT_EQ(scraped["v1"], sent["one"]) << body;
    EXPECT_EQ(scraped["v2"], sent["two"]) << body;
}

// Writes a file the way the kubelet updates a mounted ConfigMap (its atomic writer): the
// payload in a new timestamped directory, a `..data_tmp` symlink to it renamed over `..data`,
// the visible file a symlink through `..data`, and the previous directory removed.
void kubelet_update(const fs::path& dir, const std::string& name, const std::string& text) {
    static int generation = 0;
    const std::string stamp = "..2026_11_26_10_00_0" + std::to_string(generation++) + ".123456789";
    fs::create_directory(dir / stamp);
    std::ofstream(dir / stamp / name) << text;
    std::error_code none;
    const fs::path previous = fs::read_symlink(dir / "..data", none);
    fs::create_directory_symlink(stamp, dir / "..data_tmp");
    fs::rename(dir / "..data_tmp", dir / "..data");
    if (!fs::is_symlink(dir / name)) fs::create_symlink(fs::path("..data") / name, dir / name);
    if (!none) fs::remove_all(dir / previous);
}

// A cgroup with no process in it. sock_ops attached there registers no backend, so a
// listener that starts is registered only when the agent adopts it.
class EmptyCgroup {
   public:
    EmptyCgroup() {
        auto root = default_cgroup2();
        if (root) path_ = *root + "/tcpshift-e2e-" + std::to_string(::getpid());
        ok_ = root && ::mkdir(path_.c_str(), 0755) == 0;
    }
    ~EmptyCgroup() { ::rmdir(path_.c_str()); }
    bool ok() const { return ok_; }
    const std::string& path() const { return path_; }

   private:
    std::string path_;
    bool ok_ = false;
};

// setpriv arguments that give a root process what the systemd unit gives the agent: no new
// privileges, and its CapabilityBoundingSet, which for root is also the permitted and
// effective set.
std::vector<std::string> with_the_units_capabilities() {
    std::ifstream unit(std::string(TCPSHIFT_SOURCE_DIR) + "/packaging/tcpshift-agent.service");
    std::string bounding = "-all";
    for (std::string line; std::getline(unit, line);) {
        if (!line.starts_with("CapabilityBoundingSet=")) continue;
        std::istringstream caps(line.substr(line.find('=') + 1));
        for (std::string cap; caps >> cap;) {
            std::transform(cap.begin(), cap.end(), cap.begin(), [](unsigned char c) { return std::tolower(c); });
            bounding += ",+" + cap.substr(4);  // cap_bpf -> bpf
        }
    }
    return {"/usr/bin/setpriv", "--no-new-privs", "--bounding-set=" + bounding, "--"};
}

uint64_t effective_capabilities(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.starts_with("CapEff:")) return std::stoull(line.substr(7), nullptr, 16);
    return ~0ull;
}

TEST_F(AgentTest, ASecondAgentOnTheNamespaceFailsNamingTheFirst) {
    replace_file(dir_ / "tcp-echo.yaml", config(50, 50));
    start_agent();
    const fs::path other = dir_ / "other";
    fs::create_directories(other);
    replace_file(other / "tcp-echo.yaml", config(10, 90));
    const std::string second_log = (dir_ / "second.log").string();
    Child second = Child::start("", {TCPSHIFT_BIN, "agent", "--config", other.string(), "--netns", netns(),
                                     "--metrics-addr", "127.0.0.1:" + std::to_string(free_port())},
                                std::chrono::milliseconds(0), second_log);
    const auto status = second.wait(std::chrono::seconds(5));
    std::ifstream in(second_log);
    const std::string err(std::istreambuf_iterator<char>(in), {});
    ASSERT_TRUE(status.has_value()) << "the second agent still runs beside the first: " << err;
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << err;
    EXPECT_NE(err.find("agent: another agent keeps this network namespace (pid " + std::to_string(agent_.pid()) +
                       ", config " + dir_.string() + "; lock /run/tcpshift/"),
              std::string::npos)
        << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "one line: " << err;
    EXPECT_EQ(metric(kWeightV1), 50) << "the first agent's split keeps serving";
    EXPECT_EQ(tcpshift_here({"verify"}).exit_code, 0);
}

TEST_F(AgentTest, ASecondAgentOnTheMetricsAddressFailsAndTheFirstAnswersEveryScrape) {
    replace_file(dir_ / "tcp-echo.yaml", config(50, 50));
    start_agent();
    TestNetns elsewhere;
    ASSERT_TRUE(elsewhere.ok());
    const fs::path other = dir_ / "other";
    fs::create_directories(other);
    replace_file(other / "tcp-echo.yaml", config(10, 90));
    const std::string second_log = (dir_ / "second.log").string();
    Child second = Child::start("", {TCPSHIFT_BIN, "agent", "--config", other.string(), "--netns", elsewhere.name(),
                                     "--metrics-addr", "127.0.0.1:" + std::to_string(port_)},
                                std::chrono::milliseconds(0), second_log);
    const auto status = second.wait(std::chrono::seconds(5));
    std::ifstream in(second_log);
    const std::string err(std::istreambuf_iterator<char>(in), {});
    for (int i = 0; i < 20; ++i) EXPECT_EQ(metric(kWeightV1), 50) << "scrape " << i << " reached another agent";
    ASSERT_TRUE(status.has_value()) << "the second agent shares the metrics address: " << err;
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << err;
    EXPECT_NE(err.find("metrics: listen on 127.0.0.1:" + std::to_string(port_) +
                       " (--metrics-addr): EADDRINUSE (Address already in use)"),
              std::string::npos)
        << err;
    const auto elsewhere_status = tcpshift({"status", "--json", "--netns", elsewhere.name()});
    EXPECT_NE(elsewhere_status.out.find("\"attached\": false"), std::string::npos)
        << "the second agent changed nothing: " << elsewhere_status.out;
}

TEST_F(AgentTest, WritersBesideTheAgentAreRefusedNamingIt) {
    replace_file(dir_ / "tcp-echo.yaml", config(45, 55));
    start_agent();
    const std::string other = write_temp_file("other.yaml", config(5, 95));
    struct Case {
        std::string desc;
        std::vector<std::string> args;
    };
    const std::vector<Case> cases = {
        {.desc = "set", .args = {"set", "tcp-echo", "v1=5", "v2=95"}},
        {.desc = "apply", .args = {"apply", "-f", other}},
        {.desc = "delete", .args = {"delete", "trafficshift", "tcp-echo"}},
        {.desc = "detach", .args = {"detach"}},
    };
    const std::string agent = "is kept by the agent (pid " + std::to_string(agent_.pid()) + ", config " +
                              dir_.string() + "); change its config, or pass --force";
    for (const auto& c : cases) {
        const auto r = tcpshift_here(c.args);
        EXPECT_EQ(r.exit_code, 1) << c.desc << ": " << r.out << r.err;
        EXPECT_NE(r.err.find("tcpshift: " + c.desc + ": network namespace "), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(agent), std::string::npos) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    }
    EXPECT_EQ(metric(kWeightV1), 45);
    const auto verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    EXPECT_EQ(tcpshift_here({"apply", "--dry-run", "-f", other}).exit_code, 0) << "a dry run changes nothing";
    expect_split(45, 55);
}

TEST_F(AgentTest, VerifyComparesTheDataPlaneWithTheAgentsConfig) {
    replace_file(dir_ / "tcp-echo.yaml", config(45, 55));
    start_agent();
    const std::string agent =
        "the agent's config (pid " + std::to_string(agent_.pid()) + ", config " + dir_.string() + ")";
    auto verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    EXPECT_NE(verify.out.find("in sync: the pinned state matches the applied set and " + agent), std::string::npos)
        << verify.out;

    const auto set = tcpshift_here({"set", "tcp-echo", "v1=5", "v2=95", "--force"});
    ASSERT_EQ(set.exit_code, 0) << set.err;
    EXPECT_NE(set.err.find("warning: the agent (pid " + std::to_string(agent_.pid()) +
                           ", config " + dir_.string() + ") restores its config at its next reload"),
              std::string::npos)
        << set.err;
    verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 1) << verify.out << verify.err;
    EXPECT_NE(verify.out.find("differs: " + agent + ": service tcp-echo (id "), std::string::npos) << verify.out;
    EXPECT_NE(verify.out.find("slots differ from the configured weights"), std::string::npos) << verify.out;

    ::kill(agent_.pid(), SIGHUP);  // the agent restores its config
    ASSERT_TRUE(wait_for([&] { return metric(kWeightV1) == 45; })) << agent_log();
    verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

    replace_file(dir_ / "broken.yaml", "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nspec: [\n");
    ASSERT_TRUE(wait_for([&] { return metric(kReloadError) == 1; })) << agent_log();
    verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 1) << verify.out << verify.err;
    EXPECT_NE(verify.out.find("differs: " + agent + ": does not load, so the agent serves the config before it: " +
                              (dir_ / "broken.yaml").string()),
              std::string::npos)
        << verify.out;
}

TEST_F(AgentTest, AConfigMapUpdateByTheKubeletShiftsTheSplit) {
    kubelet_update(dir_, "tcp-echo.yaml", config(50, 50));
    start_agent();
    EXPECT_EQ(metric(kWeightV1), 50) << agent_log();
    kubelet_update(dir_, "tcp-echo.yaml", config(20, 80));
    ASSERT_TRUE(wait_for([&] { return metric(kWeightV1) == 20; })) << "no reload: " << agent_log();
    expect_split(20, 80);
    EXPECT_NE(agent_log().find(" info applied (config changed): 1 services — tcp-echo: v1 20 v2 80"),
              std::string::npos)
        << agent_log();
    const auto verify = tcpshift_here({"verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST_F(AgentTest, SigtermExitsWithinASecondAndTheDataPlaneKeepsServing) {
    replace_file(dir_ / "tcp-echo.yaml", config(50, 50));
    start_agent();
    // A scraper that keeps its connection alive between scrapes, as Prometheus does, and a
    // client that connected and has not asked yet.
    httplib::Client scraper("127.0.0.1", port_);
    scraper.set_keep_alive(true);
    const auto scraped = scraper.Get("/metrics");
    ASSERT_TRUE(scraped && scraped->status == 200);
    Fd idle(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage metrics_addr{};
    const socklen_t len = to_sockaddr(endpoint("127.0.0.1:" + std::to_string(port_)), &metrics_addr);
    ASSERT_EQ(::connect(idle.get(), reinterpret_cast<sockaddr*>(&metrics_addr), len), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));

    const auto start = std::chrono::steady_clock::now();
    ::kill(agent_.pid(), SIGTERM);
    const auto status = agent_.wait(std::chrono::seconds(10));
    const auto took =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    ASSERT_TRUE(status.has_value()) << "still running 10 s after SIGTERM: " << agent_log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << agent_log();
    EXPECT_LT(took.count(), 1000) << "SIGTERM to exit took " << took.count() << " ms";
    expect_split(50, 50);
}

TEST_F(AgentTest, AdoptionWaitsForTheWriterThatHoldsThePinLock) {
    EmptyCgroup cgroup;
    ASSERT_TRUE(cgroup.ok()) << cgroup.path();
    const auto attach = tcpshift_here({"attach", "--cgroup", cgroup.path()});
    ASSERT_EQ(attach.exit_code, 0) << attach.err;
    replace_file(dir_ / "tcp-echo.yaml", config(50, 50));
    start_agent();
    const std::string ready_v2 = R"(tcpshift_backend_ready{service="tcp-echo",subset="v2",backend="127.0.0.1:9002"})";
    ASSERT_EQ(metric(ready_v2), 1) << "adopted at start: " << agent_log();
    v2_.stop(SIGKILL);
    ASSERT_TRUE(wait_for([&] { return metric(ready_v2) == 0; }));
    {
        auto writer = PinLock::acquire(std::chrono::seconds(5));
        ASSERT_TRUE(writer) << writer.error().message;
        v2_ = start_echo(netns(), "127.0.0.1:9002", "two");
        std::this_thread::sleep_for(std::chrono::milliseconds(2500));
        EXPECT_EQ(metric(ready_v2), 0) << "adopted while another writer held the pin lock: " << agent_log();
    }
    EXPECT_TRUE(wait_for([&] { return metric(ready_v2) == 1; }, std::chrono::seconds(3))) << agent_log();
    EXPECT_NE(agent_log().find("adopted the listener of backend 127.0.0.1:9002 from tcpshift-echo"), std::string::npos)
        << agent_log();
}

TEST_F(AgentTest, WithTheUnitsCapabilitiesItAdoptsTheBackendOfAnotherUser) {
    if (!fs::exists("/usr/bin/setpriv"))
        GTEST_FAIL() << "setpriv is not installed; scripts/setup.sh installs util-linux";
    v1_.stop(SIGKILL);
    v1_ = Child::start(netns(), {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                 TCPSHIFT_ECHO_BIN, "--listen", "127.0.0.1:9001", "--prefix", "one"});
    ASSERT_FALSE(v1_.first_line().empty()) << "the backend did not start as nobody";
    struct stat proc {};
    ASSERT_EQ(::stat(("/proc/" + std::to_string(v1_.pid())).c_str(), &proc), 0);
    ASSERT_EQ(proc.st_uid, 65534u) << "the backend runs as nobody";
    const auto setpriv = with_the_units_capabilities();
    ASSERT_NE(setpriv[2].find(",+bpf"), std::string::npos) << "the unit was not read: " << setpriv[2];
    replace_file(dir_ / "tcp-echo.yaml", config(50, 50));
    port_ = free_port();
    bool healthy = false;
    agent_ = tcpshift::testing::start_agent(netns(), dir_.string(), port_, log_, {}, &healthy, setpriv);
    ASSERT_TRUE(healthy) << agent_log();
    EXPECT_EQ(effective_capabilities(agent_.pid()) & (1ull << 1), 0u) << "the agent runs without CAP_DAC_OVERRIDE";
    const std::string ready_v1 = R"(tcpshift_backend_ready{service="tcp-echo",subset="v1",backend="127.0.0.1:9001"})";
    EXPECT_EQ(metric(ready_v1), 1) << agent_log();
    const auto status = tcpshift_here({"status"});
    EXPECT_NE(status.out.find("v1      50      50.0%  127.0.0.1:9001  yes"), std::string::npos) << status.out;
    expect_split(50, 50);
}

}  // namespace
}  // namespace tcpshift::testing
