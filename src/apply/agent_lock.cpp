#include "apply/agent_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "dataplane/pins.h"

namespace tcpshift {

namespace {

using nlohmann::json;

// Readers take a shared lock for a moment to learn whether an agent runs, and an agent
// writes its claim just after it takes the lock; both waits are short, so they are retried
// for this long before anything is concluded.
constexpr auto kRetryEvery = std::chrono::milliseconds(5);
constexpr int kRetries = 40;

std::optional<AgentClaim> parse_claim(const std::string& text) {
    try {
        const json j = json::parse(text);
        return AgentClaim{.pid = j.at("pid").get<pid_t>(),
                          .config = j.at("config").get<std::vector<std::string>>(),
                          .ns = j.at("namespace").get<std::string>(),
                          .strict = j.at("strict").get<bool>()};
    } catch (const json::exception&) {
        return std::nullopt;
    }
}

// The claim of the agent holding `fd`'s lock; pid 0 when it never became readable.
AgentClaim read_claim(int fd) {
    for (int i = 0; i < kRetries; ++i) {
        std::string text(4096, '\0');
        const ssize_t n = ::pread(fd, text.data(), text.size(), 0);
        text.resize(n > 0 ? static_cast<size_t>(n) : 0);
        if (auto claim = parse_claim(text)) return *claim;
        std::this_thread::sleep_for(kRetryEvery);
    }
    return AgentClaim{};
}

Result<void> write_claim(int fd, const std::string& path, const AgentClaim& claim) {
    const std::string text =
        json{{"pid", claim.pid}, {"config", claim.config}, {"namespace", claim.ns}, {"strict", claim.strict}}.dump() +
        "\n";
    if (::ftruncate(fd, 0) != 0) return fail(system_error("truncate " + path, errno));
    if (::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
        return fail(system_error("write " + path, errno));
    return {};
}

// Is `fd` still the file at `path`, or was it removed (or replaced) since it was opened?
bool names_file(const std::string& path, int fd) {
    struct stat at_path {}, held {};
    return ::stat(path.c_str(), &at_path) == 0 && ::fstat(fd, &held) == 0 && at_path.st_dev == held.st_dev &&
           at_path.st_ino == held.st_ino;
}

}  // namespace

std::string AgentClaim::str() const {
    std::string text = pid > 0 ? "pid " + std::to_string(pid) : "pid unknown";
    text += ", config ";
    for (size_t i = 0; i < config.size(); ++i) text += (i ? " " : "") + config[i];
    if (config.empty()) text += "unknown";
    return text;
}

std::string agent_lock_path(uint64_t netns_inode) { return state_dir(netns_inode) + "/agent.lock"; }

Result<AgentLock> AgentLock::acquire(const std::string& path, const AgentClaim& claim) {
    if (auto ok = make_dirs(std::filesystem::path(path).parent_path().string(), 0700); !ok) return fail(ok.error());
    for (int attempt = 0;; ++attempt) {
        Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!fd) return fail(system_error("agent: open " + path, errno));
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) {
            if (!names_file(path, fd.get())) continue;  // removed between open and flock
            if (auto ok = write_claim(fd.get(), path, claim); !ok) return fail(ok.error());
            AgentLock lock;
            lock.path_ = path;
            lock.claim_ = claim;
            lock.fd_ = std::move(fd);
            return lock;
        }
        if (errno != EWOULDBLOCK) return fail(system_error("agent: flock " + path, errno));
        if (attempt == kRetries)
            return fail(system_error("agent: another agent keeps this network namespace (" +
                                     read_claim(fd.get()).str() + "; lock " + path +
                                     "); one agent per namespace: stop it first"));
        std::this_thread::sleep_for(kRetryEvery);
    }
}

Result<void> AgentLock::keep() {
    if (names_file(path_, fd_.get())) return {};
    auto again = acquire(path_, claim_);
    if (!again) return fail(again.error());
    *this = std::move(*again);
    return {};
}

Result<std::optional<AgentClaim>> running_agent(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT) return std::nullopt;
        return fail(system_error("open " + path, errno));
    }
    // A shared lock is granted only while no agent holds the exclusive one; closing the fd
    // gives it back at once.
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return std::nullopt;
    if (errno != EWOULDBLOCK) return fail(system_error("flock " + path, errno));
    return read_claim(fd.get());
}

}  // namespace tcpshift
