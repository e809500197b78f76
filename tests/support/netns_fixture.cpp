#include "netns_fixture.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
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
    const auto dir = std::filesystem::temp_directory_path() / ("tcpshift-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
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
                  const std::vector<std::string>& extra, bool* healthy) {
    std::vector<std::string> argv{TCPSHIFT_BIN, "agent", "--config", config_dir, "--netns", netns,
                                  "--metrics-addr", "127.0.0.1:" + std::to_string(port)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Child agent = Child::start("", argv, std::chrono::milliseconds(0), log);
    *healthy = false;
    for (int i = 0; i < 200 && !*healthy; ++i) {
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

}  // namespace tcpshift::testing
