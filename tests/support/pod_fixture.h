// A simulated Kubernetes node for connect-time tests: a node namespace with a pod bridge, pods
// in namespaces of their own on it, a second node routed through the first, and a cgroup for
// the clients. Nothing of tcpshift is attached by these types.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "process.h"

namespace tcpshift::testing {

// One pod: a namespace whose eth0 holds both its addresses, default routes through its node.
struct Pod {
    std::string netns;
    std::string ipv4;  // "10.244.0.11"
    std::string ipv6;  // "fd00:244::11"

    std::string ipv4_endpoint(uint16_t port) const { return ipv4 + ":" + std::to_string(port); }
    std::string ipv6_endpoint(uint16_t port) const { return "[" + ipv6 + "]:" + std::to_string(port); }
};

struct PodRange;  // the addresses of one node's pods

// The node namespace, "tcpshift-t<pid>-node<n>" with lo up, forwarding IPv4 and IPv6, and the
// bridge tsbr0 holding 10.244.0.1/16 and fd00:244::1/64. Pods hang on the bridge by veth pairs.
// An optional second node ("...-node2") is linked to it by a veth pair (10.99.0.1/30 and
// fd00:99::1/64 here, .2 and ::2 there) and has its own bridge, 10.245.0.1/16 and
// fd00:245::1/64; each node routes the other's pod range, so pods reach pods across nodes.
//
// A pod's end of its veth pair is eth0, the node's end vp<index>; the nodes' link is tonode2 on
// the first, tonode1 on the second. No address waits for DAD, link-local ones included
// (accept_dad=0 in every namespace), so all are usable at once. The destructor deletes every
// namespace it made (the veth ends die with them); stop the processes in them first, or a
// namespace lives on, nameless, as long as one holds it.
class PodNode {
   public:
    static constexpr const char* kBridge = "tsbr0";
    static constexpr const char* kGatewayV4 = "10.244.0.1";
    static constexpr const char* kGatewayV6 = "fd00:244::1";
    static constexpr const char* kRemoteGatewayV4 = "10.245.0.1";
    static constexpr const char* kRemoteGatewayV6 = "fd00:245::1";

    PodNode();
    ~PodNode();
    PodNode(const PodNode&) = delete;
    PodNode& operator=(const PodNode&) = delete;

    // False once any step of the setup failed; error() names the first failing command and
    // what it printed. Steps after a failure are not tried.
    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }

    const std::string& netns() const { return node_; }
    // The second node's namespace; empty before add_remote_node().
    const std::string& remote_netns() const { return remote_; }
    // Every namespace made so far, in the order made.
    const std::vector<std::string>& namespaces() const { return namespaces_; }

    // A pod on this node's bridge, in namespace "<node>-<name_suffix>", with 10.244.0.<index>/16
    // and fd00:244::<index>/64 (index 2 to 254; 1 is the gateway). Check ok() after it.
    Pod add_pod(const std::string& name_suffix, int index);
    // Makes the second node; once only. Returns ok().
    bool add_remote_node();
    // A pod on the second node's bridge, in "<node2>-<name_suffix>", with 10.245.0.<index>/16
    // and fd00:245::<index>/64. Needs add_remote_node().
    Pod add_remote_pod(const std::string& name_suffix, int index);

   private:
    // Runs setup commands in order unless an earlier one failed; records the first failure.
    bool step(const std::vector<std::string>& argv);
    bool steps(const std::vector<std::vector<std::string>>& commands);
    // `ip netns add NAME` with lo up; the name is remembered for deletion once it exists.
    bool make_netns(const std::string& name);
    // Brings up a bridge in `netns` with the gateway addresses, forwarding on in the namespace.
    bool make_bridge(const std::string& netns, const std::string& v4_cidr, const std::string& v6_cidr);
    Pod make_pod(const std::string& node_netns, const std::string& name, const PodRange& range, int index);

    std::string node_;
    std::string remote_;
    std::vector<std::string> namespaces_;
    std::string error_;
};

// A fresh cgroup, "<cgroup2 root>/tcpshift-t<pid>-<n>", for clients that connect-time
// programs attach to. The destructor kills whatever is left in it (cgroup.kill, or SIGKILL to
// each pid where the kernel lacks it), waits up to 2 s for it to empty, and removes it; a
// cgroup it cannot remove is a test failure.
class TestCgroup {
   public:
    TestCgroup();
    ~TestCgroup();
    TestCgroup(const TestCgroup&) = delete;
    TestCgroup& operator=(const TestCgroup&) = delete;

    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }
    // The directory, e.g. /sys/fs/cgroup/tcpshift-t123-0.
    const std::string& path() const { return path_; }
    // Its last component, "tcpshift-t123-0", which ends its line in /proc/PID/cgroup.
    const std::string& name() const { return name_; }
    // The processes in it now.
    std::vector<pid_t> procs() const;
    // CPU time spent in it so far (cpu.stat usage_usec, kept by every cgroup2 directory): above
    // zero once anything has run there.
    uint64_t cpu_usage_usec() const;

   private:
    void kill_all() const;

    std::string name_;
    std::string path_;
    std::string error_;
    bool made_ = false;
};

// Runs argv to completion in `pod_netns` and `cgroup` (either "" to stay where the test is).
CommandResult run_in(const std::string& pod_netns, const std::string& cgroup, const std::vector<std::string>& argv);

// What tcpshift-loadgen should do: `connections` short echo connections to `target`
// ("10.244.0.11:9000" or "[fd00:244::11]:9000") from `concurrency` clients at once.
struct LoadOptions {
    std::string target;
    uint64_t connections = 200;
    unsigned concurrency = 8;
    std::vector<std::string> extra;  // further flags, e.g. {"--timeout-ms", "500"}
};

// Runs tcpshift-loadgen in `pod_netns` and `cgroup` and returns its JSON summary
// ({"ok", "failed", "failures", "first_errors", "by_reply": {"one": 200}, ...}). When it does not
// exit 0 with a summary, records a test failure with its stderr and returns an empty object.
nlohmann::json run_loadgen(const std::string& pod_netns, const std::string& cgroup, const LoadOptions& options);

}  // namespace tcpshift::testing
