#include "netns_fixture.h"

#include <unistd.h>

#include <cstdlib>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "client.h"

namespace tcpshift::testing {

bool privileged_or_skip(std::string* why) {
    if (::geteuid() == 0) return true;
    *why = "needs root: it loads BPF programs and creates network namespaces";
    return false;
}

TestNetns::TestNetns() {
    static std::atomic<int> counter{0};
    name_ = "tcpshift-t" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    ok_ = run_command({"/sbin/ip", "netns", "add", name_}).exit_code == 0 &&
          run_command({"/sbin/ip", "-n", name_, "link", "set", "lo", "up"}).exit_code == 0;
}

TestNetns::~TestNetns() {
    tcpshift({"detach", "--netns", name_});
    run_command({"/sbin/ip", "netns", "del", name_});
}

std::string write_temp_file(const std::string& name, const std::string& text) {
    // A directory of this process's own: a pid is reused across the tiers of one run, and a
    // directory named by it could hold an earlier test's files (an agent would load them).
    static const std::filesystem::path dir = [] {
        std::string tmpl = (std::filesystem::temp_directory_path() / "tcpshift-test-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
        return std::filesystem::path(tmpl);
    }();
    static std::atomic<int> counter{0};
    const auto path = dir / (std::to_string(counter++) + "-" + name);
    std::ofstream(path) << text;
    return path.string();
}

std::string tcp_echo_config(int v1_weight, int v2_weight) {
    return "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: tcp-echo}\nspec:\n"
           "  listen: [\"127.0.0.1:31400\"]\n  subsets:\n"
           "  - {name: v1, weight: " + std::to_string(v1_weight) + ", backends: [\"127.0.0.1:9001\"]}\n"
           "  - {name: v2, weight: " + std::to_string(v2_weight) + ", backends: [\"127.0.0.1:9002\"]}\n";
}

Child start_agent(const std::string& netns, const std::string& config_dir, int port, const std::string& log,
                  const std::vector<std::string>& extra, bool* healthy, const std::vector<std::string>& wrapper) {
    const std::vector<std::string> command{TCPSHIFT_BIN, "agent", "--config", config_dir, "--netns", netns,
                                           "--metrics-addr", "127.0.0.1:" + std::to_string(port)};
    std::vector<std::string> argv = wrapper;
    argv.insert(argv.end(), command.begin(), command.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    Child agent = Child::start("", argv, std::chrono::milliseconds(0), log);
    // The first apply loads the programs: well under a second on a host, tens of seconds in
    // an emulated guest, whose verifier runs many times slower.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    *healthy = false;
    while (!*healthy && std::chrono::steady_clock::now() < deadline && !agent.wait(std::chrono::milliseconds(0))) {
        *healthy = http_get(port, "/healthz").status == 200;
        if (!*healthy) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return agent;
}

void NetnsTest::SetUp() {
    TCPSHIFT_REQUIRE_ROOT();
    ns_ = std::make_unique<TestNetns>();
    ASSERT_TRUE(ns_->ok()) << "could not create network namespace " << ns_->name();
}

void NetnsTest::TearDown() { ns_.reset(); }

CommandResult NetnsTest::tcpshift_here(std::vector<std::string> args) {
    args.push_back("--netns");
    args.push_back(netns());
    return tcpshift(args);
}

void NetnsTest::apply(const std::string& yaml) {
    const auto path = write_temp_file("config.yaml", yaml);
    const auto r = tcpshift_here({"apply", "-f", path});
    ASSERT_EQ(r.exit_code, 0) << r.err;
}

ScopedNetns NetnsTest::enter() {
    auto scope = ScopedNetns::enter(netns());
    if (!scope) {
        ADD_FAILURE() << scope.error().message;
        std::abort();
    }
    return std::move(*scope);
}

uint64_t NetnsTest::netns_inode() {
    auto in = enter();
    return current_netns()->inode;
}

void NeighbourNamespace::SetUp() {
    if (::geteuid() != 0) return;  // the privileged tests skip or fail by themselves
    ns_ = std::make_unique<TestNetns>();
    ASSERT_TRUE(ns_->ok()) << "could not create the neighbour namespace";
    backends_.push_back(start_echo(ns_->name(), "127.0.0.1:9001", "neighbour-one"));
    backends_.push_back(start_echo(ns_->name(), "127.0.0.1:9002", "neighbour-two"));
    std::string config = tcp_echo_config(50, 50);
    config.replace(config.find("127.0.0.1:31400"), 15, "0.0.0.0:31400");
    const auto r = tcpshift({"apply", "-f", write_temp_file("neighbour.yaml", config), "--netns", ns_->name()});
    ASSERT_EQ(r.exit_code, 0) << "neighbour: " << r.err;
    const std::string name = ns_->name();
    client_ = std::thread([this, name] {
        auto in = ScopedNetns::enter(name);
        if (!in) return;
        const Endpoint frontend = endpoint("127.0.0.1:31400");
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(20);
        while (!stop_ && std::chrono::steady_clock::now() < deadline) {
            const EchoResult reply = echo_once(frontend, "hello", std::chrono::seconds(3));
            if (reply.ok && reply.reply.starts_with("neighbour-")) {
                ++replies_;
            } else {
                if (failures_++ == 0) first_error_ = reply.ok ? "reply \"" + reply.reply + "\"" : reply.error;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });
}

void NeighbourNamespace::TearDown() {
    if (!ns_) return;
    stop_ = true;
    if (client_.joinable()) client_.join();
    const auto r = tcpshift({"stats", "--json", "--netns", ns_->name()});
    EXPECT_EQ(r.exit_code, 0) << "neighbour: " << r.err;
    if (r.exit_code == 0) {
        uint64_t opened = 0;
        const auto stats = nlohmann::json::parse(r.out);
        for (const auto& svc : stats["services"])
            for (const auto& subset : svc["subsets"])
                for (const auto& b : subset["backends"]) opened += b["opened"].get<uint64_t>();
        EXPECT_EQ(opened, replies_) << "the neighbour namespace counted other connections than its own: " << r.out;
    }
    EXPECT_GT(replies_, 0u) << "the neighbour's client got no reply";
    EXPECT_EQ(failures_, 0u) << "the neighbour's client failed while the tests ran: " << first_error_;
    backends_.clear();
    ns_.reset();
}

}  // namespace tcpshift::testing
