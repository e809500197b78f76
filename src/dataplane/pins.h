// The pin directory contract: /sys/fs/bpf/tcpshift/<netns inode>/ holds the maps and links of
// one attached namespace, under a fixed set of names; /run/tcpshift/<netns inode>/ holds the
// applied resources beside it (bpffs holds only BPF objects).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "base/error.h"
#include "base/fd.h"

namespace tcpshift {

inline constexpr const char* kBpffsMount = "/sys/fs/bpf";
inline constexpr const char* kPinRoot = "/sys/fs/bpf/tcpshift";
inline constexpr const char* kStateRoot = "/run/tcpshift";
// A bpffs instance of tcpshift's own, mounted mode 0711, where `attach --pin-group` pins the
// maps a group may read. /sys/fs/bpf is often mounted 0700 (systemd, bpftool), and its mode
// is the host's business, so group readers never traverse it.
inline constexpr const char* kGroupPinRoot = "/run/tcpshift/bpf";

// Pin names inside a namespace's directory.
inline constexpr const char* kPinSteerLink = "link_sk_lookup";
inline constexpr const char* kPinSockopsLink = "link_sock_ops";
// The cgroup programs of connect-time steering, by program name and pin name.
struct CgroupLinkPin {
    const char* program;
    const char* pin;
};
inline constexpr CgroupLinkPin kConnectLinks[] = {
    {"connect_v4", "link_connect4"},
    {"connect_v6", "link_connect6"},
    {"getpeername_v4", "link_getpeername4"},
    {"getpeername_v6", "link_getpeername6"},
};

std::string pin_dir(uint64_t netns_inode);
std::string state_dir(uint64_t netns_inode);
std::string group_pin_dir(uint64_t netns_inode);  // kGroupPinRoot/<netns inode>

// Refuses to work from a mount namespace where /sys/fs/bpf is not bpffs (`ip netns exec`
// remounts /sys): pins made there would die with the command.
Result<void> check_host_bpffs();
// Mounts bpffs at /sys/fs/bpf when nothing BPF is mounted there (a fresh host), and creates
// kPinRoot (mode 0700). Refuses as check_host_bpffs() does.
Result<void> ensure_bpffs();

// Mounts tcpshift's own bpffs at kGroupPinRoot (mode 0711) unless it is mounted; /run/tcpshift
// becomes 0711 so that a group can reach it without listing what is in it.
Result<void> ensure_group_bpffs();

// The cgroup2 mount to attach sock_ops to; mounts cgroup2 under /run/tcpshift when the host has none.
Result<std::string> default_cgroup2();

// Holds a flock on kPinRoot: exclusive for a writer, so two writers cannot interleave, and
// shared for a reader, so it never reads a half-made change. Waits up to `patience` for the
// writer before it, then fails naming the wait.
class PinLock {
   public:
    enum class Mode { kShared, kExclusive };
    static Result<PinLock> acquire(std::chrono::milliseconds patience, Mode mode = Mode::kExclusive);

   private:
    Fd fd_;
};

// Creates every missing directory of `path` with `mode`.
Result<void> make_dirs(const std::string& path, unsigned mode);
// Removes a directory tree; missing is fine.
Result<void> remove_tree(const std::string& path);
// Removes everything tcpshift keeps for one namespace: its pins, its group's pins, its state.
Result<void> remove_namespace_files(uint64_t netns_inode);

}  // namespace tcpshift
