#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <utility>

namespace tcpshift::testing {

namespace {

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
    std::vector<char*> out;
    for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
    out.push_back(nullptr);
    return out;
}

// The files a child opens to enter its placement, named before fork: after fork in a process
// with threads only async-signal-safe calls may follow, and building a string allocates.
struct PlacementFiles {
    std::string netns;         // /var/run/netns/NAME
    std::string cgroup_procs;  // CGROUP/cgroup.procs
};

PlacementFiles placement_files(const Placement& where) {
    PlacementFiles files;
    if (!where.netns.empty()) files.netns = "/var/run/netns/" + where.netns;
    if (!where.cgroup.empty()) files.cgroup_procs = where.cgroup + "/cgroup.procs";
    return files;
}

void say(const char* text, size_t size) {
    if (::write(2, text, size) < 0) return;  // nothing better to do with the error of an error
}

[[noreturn]] void child_fails(const char* what, const std::string& path, int status) {
    say(what, std::strlen(what));
    say(path.c_str(), path.size());
    say("\n", 1);
    ::_exit(status);
}

// In the forked child, before exec: joins the cgroup, then enters the namespace.
void enter_placement(const PlacementFiles& files) {
    if (!files.cgroup_procs.empty()) {
        // "0" names the writer itself.
        const int fd = ::open(files.cgroup_procs.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ::write(fd, "0", 1) != 1) child_fails("cannot join the cgroup through ", files.cgroup_procs, 125);
        ::close(fd);
    }
    if (!files.netns.empty()) {
        const int fd = ::open(files.netns.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0)
            child_fails("cannot enter the network namespace ", files.netns, 126);
        ::close(fd);
    }
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv, const Placement& where) {
    const PlacementFiles files = placement_files(where);
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) return {};
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out_pipe[1], 1);
        ::dup2(err_pipe[1], 2);
        enter_placement(files);
        ::execv(argv[0].c_str(), c_argv(argv).data());
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    CommandResult result;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (::poll(fds, 2, -1) < 0) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char buf[4096];
            const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
            if (n <= 0) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            } else {
                (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
            }
        }
    }
    int status = 0;
    rusage usage{};
    ::wait4(pid, &status, 0, &usage);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.max_rss_kib = usage.ru_maxrss;
    return result;
}

CommandResult tcpshift(const std::vector<std::string>& args) {
    std::vector<std::string> argv{TCPSHIFT_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
}

Child Child::start(const std::string& netns, const std::vector<std::string>& argv,
                   std::chrono::milliseconds ready_within, const std::string& stderr_path, const std::string& cgroup) {
    const PlacementFiles files = placement_files({.netns = netns, .cgroup = cgroup});
    int out_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) return {};
    Child child;
    child.pid_ = ::fork();
    if (child.pid_ == 0) {
        ::dup2(out_pipe[1], 1);
        if (!stderr_path.empty()) {
            const int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (err >= 0) ::dup2(err, 2);
        }
        enter_placement(files);
        ::execv(argv[0].c_str(), c_argv(argv).data());
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    pollfd pfd{out_pipe[0], POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + ready_within;
    std::string got;
    while (ready_within.count() > 0 && got.find('\n') == std::string::npos) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
        char buf[256];
        const ssize_t n = ::read(out_pipe[0], buf, sizeof(buf));
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
    }
    ::close(out_pipe[0]);
    child.first_line_ = got.substr(0, got.find('\n'));
    return child;
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), first_line_(std::move(other.first_line_)) {}

Child& Child::operator=(Child&& other) noexcept {
    if (this != &other) {
        if (pid_ > 0) stop(SIGKILL);
        pid_ = std::exchange(other.pid_, -1);
        first_line_ = std::move(other.first_line_);
    }
    return *this;
}

Child::~Child() {
    if (pid_ > 0) stop(SIGKILL);
}

int Child::stop(int signal) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
}

std::optional<int> Child::wait(std::chrono::milliseconds limit) {
    if (pid_ <= 0) return std::nullopt;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return status;
        }
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        ::usleep(2000);
    }
}

Child start_echo(const std::string& netns, const std::string& listen, const std::string& prefix,
                 const std::vector<std::string>& extra) {
    std::vector<std::string> argv{TCPSHIFT_ECHO_BIN, "--listen", listen, "--prefix", prefix};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Child::start(netns, argv);
}

}  // namespace tcpshift::testing
