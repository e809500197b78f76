#include "dataplane/pins.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace tcpshift {

namespace fs = std::filesystem;

std::string pin_dir(uint64_t netns_inode) { return std::string(kPinRoot) + "/" + std::to_string(netns_inode); }
std::string state_dir(uint64_t netns_inode) { return std::string(kStateRoot) + "/" + std::to_string(netns_inode); }
std::string group_pin_dir(uint64_t netns_inode) {
    return std::string(kGroupPinRoot) + "/" + std::to_string(netns_inode);
}

Result<void> make_dirs(const std::string& path, unsigned mode) {
    std::string partial;
    std::stringstream parts(path);
    std::string part;
    while (std::getline(parts, part, '/')) {
        if (part.empty()) continue;
        partial += "/" + part;
        if (::mkdir(partial.c_str(), mode) != 0 && errno != EEXIST)
            return fail(system_error("mkdir " + partial, errno));
    }
    return {};
}

Result<void> remove_tree(const std::string& path) {
    std::error_code ec;
    fs::remove_all(path, ec);
    if (ec) return fail(system_error("remove " + path + ": " + ec.message()));
    return {};
}

Result<void> remove_namespace_files(uint64_t netns_inode) {
    if (auto ok = remove_tree(pin_dir(netns_inode)); !ok) return ok;
    if (auto ok = remove_tree(group_pin_dir(netns_inode)); !ok) return ok;
    return remove_tree(state_dir(netns_inode));
}

namespace {

bool is_bpffs(const char* path) {
    struct statfs st {};
    return ::statfs(path, &st) == 0 && static_cast<unsigned long>(st.f_type) == BPF_FS_MAGIC;
}

}  // namespace

// The namespace name when the caller runs under `ip netns exec NAME`: that command gives it
// a mount namespace of its own with a fresh sysfs, named NAME, mounted on /sys.
std::string ip_netns_exec_name() {
    std::ifstream mounts("/proc/self/mounts");
    std::string device, mountpoint, rest, sys_device;
    while (mounts >> device >> mountpoint) {
        std::getline(mounts, rest);
        if (mountpoint == "/sys") sys_device = device;  // the last one is what /sys shows
    }
    struct stat st {};
    if (sys_device.empty() || sys_device == "sysfs" || sys_device.find('/') != std::string::npos) return "";
    return ::stat(("/var/run/netns/" + sys_device).c_str(), &st) == 0 ? sys_device : "";
}

Result<void> check_host_bpffs() {
    if (is_bpffs(kBpffsMount)) return {};
    const std::string name = ip_netns_exec_name();
    if (name.empty()) return {};
    return fail(system_error("this command runs under `ip netns exec " + name + "`, which remounts /sys: " + kBpffsMount +
                             " there is not the host's bpffs, so pins would vanish when it exits and what it reads "
                             "is not what is attached; run `tcpshift --netns " + name + " ...` instead"));
}

Result<void> ensure_bpffs() {
    if (auto ok = check_host_bpffs(); !ok) return ok;
    if (!is_bpffs(kBpffsMount)) {
        if (::mount("bpf", kBpffsMount, "bpf", 0, "mode=0700") != 0)
            return fail(system_error(std::string("mount bpffs at ") + kBpffsMount, errno));
    }
    if (::mkdir(kPinRoot, 0700) != 0 && errno != EEXIST)
        return fail(system_error(std::string("mkdir ") + kPinRoot, errno));
    return {};
}

Result<void> ensure_group_bpffs() {
    if (auto ok = make_dirs(kGroupPinRoot, 0711); !ok) return ok;
    if (::chmod(kStateRoot, 0711) != 0) return fail(system_error(std::string("chmod ") + kStateRoot, errno));
    if (is_bpffs(kGroupPinRoot)) return {};
    if (::mount("bpf", kGroupPinRoot, "bpf", 0, "mode=0711") != 0)
        return fail(system_error(std::string("mount bpffs at ") + kGroupPinRoot, errno));
    return {};
}

Result<std::string> default_cgroup2() {
    std::ifstream mounts("/proc/self/mounts");
    std::string device, mountpoint, type;
    std::string rest;
    while (mounts >> device >> mountpoint >> type) {
        std::getline(mounts, rest);
        if (type == "cgroup2") return mountpoint;
    }
    const std::string own = std::string(kStateRoot) + "/cgroup2";
    if (auto ok = make_dirs(own, 0700); !ok) return fail(ok.error());
    if (::mount("cgroup2", own.c_str(), "cgroup2", 0, nullptr) != 0)
        return fail(system_error("mount cgroup2 at " + own, errno));
    return own;
}

Result<PinLock> PinLock::acquire(std::chrono::milliseconds patience, Mode mode) {
    // A writer may be the first on a fresh host and mounts bpffs; a reader changes nothing,
    // and where no pin root exists there is nothing to read and nobody to wait for.
    if (mode == Mode::kExclusive)
        if (auto ok = ensure_bpffs(); !ok) return fail(ok.error());
    PinLock lock;
    lock.fd_ = Fd(::open(kPinRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!lock.fd_ && errno == ENOENT && mode == Mode::kShared) return lock;
    if (!lock.fd_) return fail(system_error(std::string("open ") + kPinRoot, errno));
    const auto deadline = std::chrono::steady_clock::now() + patience;
    const int operation = mode == Mode::kExclusive ? LOCK_EX : LOCK_SH;
    while (::flock(lock.fd_.get(), operation | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) return fail(system_error(std::string("flock ") + kPinRoot, errno));
        if (std::chrono::steady_clock::now() >= deadline)
            return fail(system_error(std::string("flock ") + kPinRoot + ": another tcpshift writer held it for " +
                                     std::to_string(patience.count()) + " ms; try again"));
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return lock;
}

}  // namespace tcpshift
