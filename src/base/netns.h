// Network namespaces: entering one by name or path, and naming the current one.
#pragma once

#include <cstdint>
#include <string>

#include "base/error.h"
#include "base/fd.h"

namespace tcpshift {

// Opens "NAME" (under /var/run/netns/) or a path such as /proc/PID/ns/net.
Result<Fd> open_netns(const std::string& spec);

// The network namespace the calling thread is in.
struct NetnsId {
    uint64_t inode = 0;   // names the pin directory
    uint64_t cookie = 0;  // what sock_ops sees (bpf_get_netns_cookie)
};
Result<NetnsId> current_netns();
// The identity of a namespace ("NAME" or a path), read by entering it for a moment.
Result<NetnsId> netns_id(const std::string& spec);
// The inode of a namespace ("NAME", a path, or "" for the calling thread's) without entering it.
Result<uint64_t> netns_inode(const std::string& spec);

// Moves the calling thread into a network namespace and back when it goes out of scope.
// Only the network namespace changes: /sys/fs/bpf and cgroup2 stay the host's, which is
// why tcpshift never relies on `ip netns exec` for itself.
class ScopedNetns {
   public:
    // An empty spec stays in the current namespace.
    static Result<ScopedNetns> enter(const std::string& spec);
    ScopedNetns(ScopedNetns&&) noexcept = default;
    ScopedNetns& operator=(ScopedNetns&&) noexcept = default;
    ~ScopedNetns();

   private:
    ScopedNetns() = default;
    Fd original_;
};

}  // namespace tcpshift
