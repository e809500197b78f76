#include "netns_fixture.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

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
