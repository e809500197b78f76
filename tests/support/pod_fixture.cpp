#include "pod_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "dataplane/pins.h"

namespace tcpshift::testing {

namespace {

constexpr const char* kIp = "/sbin/ip";

std::string process_tag() {
    return "tcpshift-t" + std::to_string(::getpid());
}

std::string joined(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
    return out;
}

}  // namespace

// A pod's addresses are PREFIX<index>; its gateway is the node's bridge.
struct PodRange {
    const char* v4_prefix;
    const char* v6_prefix;
    const char* gateway_v4;
    const char* gateway_v6;
};

namespace {

constexpr PodRange kLocalPods{"10.244.0.", "fd00:244::", PodNode::kGatewayV4, PodNode::kGatewayV6};
constexpr PodRange kRemotePods{"10.245.0.", "fd00:245::", PodNode::kRemoteGatewayV4, PodNode::kRemoteGatewayV6};

}  // namespace

PodNode::PodNode() {
    static std::atomic<int> counter{0};
    node_ = process_tag() + "-node" + std::to_string(counter++);
    if (make_netns(node_)) make_bridge(node_, std::string(kGatewayV4) + "/16", std::string(kGatewayV6) + "/64");
}

PodNode::~PodNode() {
    // Pods before the nodes they hang on; a veth pair dies with either namespace.
    for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it) run_command({kIp, "netns", "del", *it});
}

bool PodNode::step(const std::vector<std::string>& argv) {
    if (!ok()) return false;
    const CommandResult r = run_command(argv);
    if (r.exit_code == 0) return true;
    std::string err = r.err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    error_ = "`" + joined(argv) + "` exited " + std::to_string(r.exit_code) + ": " + err;
    return false;
}

bool PodNode::steps(const std::vector<std::vector<std::string>>& commands) {
    for (const auto& argv : commands)
        if (!step(argv)) return false;
    return true;
}

bool PodNode::make_netns(const std::string& name) {
    if (!step({kIp, "netns", "add", name})) return false;
    namespaces_.push_back(name);
    // No DAD for the link-local addresses of the links made later either: a router solicits
    // the neighbour of a packet it forwards from its link-local address, and sends nothing
    // while that address is tentative, so the first connections across a node would time out.
    return steps({
        {kIp, "-n", name, "link", "set", "lo", "up"},
        {kIp, "netns", "exec", name, "/sbin/sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
         "net.ipv6.conf.default.accept_dad=0"},
    });
}

bool PodNode::make_bridge(const std::string& netns, const std::string& v4_cidr, const std::string& v6_cidr) {
    // Without a multicast querier a snooping bridge may drop neighbour solicitations.
    return steps({
        {kIp, "-n", netns, "link", "add", kBridge, "type", "bridge", "mcast_snooping", "0"},
        {kIp, "-n", netns, "addr", "add", v4_cidr, "dev", kBridge},
        {kIp, "-n", netns, "addr", "add", v6_cidr, "dev", kBridge, "nodad"},
        {kIp, "-n", netns, "link", "set", kBridge, "up"},
        {kIp, "netns", "exec", netns, "/sbin/sysctl", "-qw", "net.ipv4.ip_forward=1"},
        {kIp, "netns", "exec", netns, "/sbin/sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
    });
}

Pod PodNode::make_pod(const std::string& node_netns, const std::string& name, const PodRange& range, int index) {
    Pod pod{.netns = name,
            .ipv4 = range.v4_prefix + std::to_string(index),
            .ipv6 = range.v6_prefix + std::to_string(index)};
    if (!ok()) return pod;
    if (index < 2 || index > 254) {
        error_ = "pod " + name + ": index " + std::to_string(index) + " is outside 2-254";
        return pod;
    }
    // The node's end is named by the index, so two pods of one index fail here, saying so.
    const std::string node_end = "vp" + std::to_string(index);
    if (!make_netns(name)) return pod;
    steps({
        {kIp, "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", node_end, "netns", node_netns},
        {kIp, "-n", node_netns, "link", "set", node_end, "master", kBridge, "up"},
        {kIp, "-n", name, "addr", "add", pod.ipv4 + "/16", "dev", "eth0"},
        {kIp, "-n", name, "addr", "add", pod.ipv6 + "/64", "dev", "eth0", "nodad"},
        {kIp, "-n", name, "link", "set", "eth0", "up"},
        {kIp, "-n", name, "route", "add", "default", "via", range.gateway_v4},
        {kIp, "-n", name, "-6", "route", "add", "default", "via", range.gateway_v6},
    });
    return pod;
}

Pod PodNode::add_pod(const std::string& name_suffix, int index) {
    return make_pod(node_, node_ + "-" + name_suffix, kLocalPods, index);
}

bool PodNode::add_remote_node() {
    if (!ok()) return false;
    if (!remote_.empty()) {
        error_ = "add_remote_node: " + remote_ + " exists already";
        return false;
    }
    remote_ = node_ + "-node2";
    if (!make_netns(remote_) ||
        !make_bridge(remote_, std::string(kRemoteGatewayV4) + "/16", std::string(kRemoteGatewayV6) + "/64"))
        return false;
    return steps({
        {kIp, "-n", node_, "link", "add", "tonode2", "type", "veth", "peer", "name", "tonode1", "netns", remote_},
        {kIp, "-n", node_, "addr", "add", "10.99.0.1/30", "dev", "tonode2"},
        {kIp, "-n", node_, "addr", "add", "fd00:99::1/64", "dev", "tonode2", "nodad"},
        {kIp, "-n", node_, "link", "set", "tonode2", "up"},
        {kIp, "-n", remote_, "addr", "add", "10.99.0.2/30", "dev", "tonode1"},
        {kIp, "-n", remote_, "addr", "add", "fd00:99::2/64", "dev", "tonode1", "nodad"},
        {kIp, "-n", remote_, "link", "set", "tonode1", "up"},
        {kIp, "-n", node_, "route", "add", "10.245.0.0/16", "via", "10.99.0.2"},
        {kIp, "-n", node_, "-6", "route", "add", "fd00:245::/64", "via", "fd00:99::2"},
        {kIp, "-n", remote_, "route", "add", "default", "via", "10.99.0.1"},
        {kIp, "-n", remote_, "-6", "route", "add", "default", "via", "fd00:99::1"},
    });
}

Pod PodNode::add_remote_pod(const std::string& name_suffix, int index) {
    if (ok() && remote_.empty()) error_ = "add_remote_pod: add_remote_node() first";
    return make_pod(remote_, remote_ + "-" + name_suffix, kRemotePods, index);
}

TestCgroup::TestCgroup() {
    static std::atomic<int> counter{0};
    auto root = default_cgroup2();
    if (!root) {
        error_ = "no cgroup2 hierarchy: " + root.error().message;
        return;
    }
    name_ = process_tag() + "-" + std::to_string(counter++);
    path_ = *root + "/" + name_;
    if (::mkdir(path_.c_str(), 0755) != 0) {
        error_ = "mkdir " + path_ + ": " + std::strerror(errno);
        return;
    }
    made_ = true;
}

TestCgroup::~TestCgroup() {
    if (!made_) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    int last_errno = 0;
    do {
        kill_all();
        if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) return;
        last_errno = errno;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } while (last_errno == EBUSY && std::chrono::steady_clock::now() < deadline);
    ADD_FAILURE() << "cannot remove cgroup " << path_ << ": " << std::strerror(last_errno);
}

void TestCgroup::kill_all() const {
    // cgroup.kill (Linux 5.14) kills atomically, racing no fork; the pid walk is the fallback.
    const int fd = ::open((path_ + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC);
    const bool killed = fd >= 0 && ::write(fd, "1", 1) == 1;
    if (fd >= 0) ::close(fd);
    if (killed) return;
    for (const pid_t pid : procs()) ::kill(pid, SIGKILL);
}

std::vector<pid_t> TestCgroup::procs() const {
    std::vector<pid_t> pids;
    std::ifstream in(path_ + "/cgroup.procs");
    for (pid_t pid; in >> pid;) pids.push_back(pid);
    return pids;
}

uint64_t TestCgroup::cpu_usage_usec() const {
    std::ifstream in(path_ + "/cpu.stat");
    std::string key;
    for (uint64_t value; in >> key >> value;)
        if (key == "usage_usec") return value;
    return 0;
}

CommandResult run_in(const std::string& pod_netns, const std::string& cgroup, const std::vector<std::string>& argv) {
    return run_command(argv, {.netns = pod_netns, .cgroup = cgroup});
}

nlohmann::json run_loadgen(const std::string& pod_netns, const std::string& cgroup, const LoadOptions& options) {
    std::vector<std::string> argv{TCPSHIFT_LOADGEN_BIN,
                                  "--target",
                                  options.target,
                                  "--connections",
                                  std::to_string(options.connections),
                                  "--concurrency",
                                  std::to_string(options.concurrency)};
    argv.insert(argv.end(), options.extra.begin(), options.extra.end());
    const CommandResult r = run_in(pod_netns, cgroup, argv);
    if (r.exit_code != 0) {
        ADD_FAILURE() << "tcpshift-loadgen --target " << options.target << " in " << pod_netns << " exited "
                      << r.exit_code << ": " << r.err;
        return nlohmann::json::object();
    }
    auto summary = nlohmann::json::parse(r.out, nullptr, false);
    if (summary.is_discarded() || !summary.is_object()) {
        ADD_FAILURE() << "tcpshift-loadgen --target " << options.target << " printed no JSON summary: " << r.out;
        return nlohmann::json::object();
    }
    return summary;
}

}  // namespace tcpshift::testing
