// Child processes for the tests: backends started inside a network namespace, and the
// tcpshift CLI run as a user would run it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace tcpshift::testing {

struct CommandResult {
    int exit_code = -1;
    std::string out;
    std::string err;
    long max_rss_kib = 0;  // peak resident memory of the command
};

// Where a child process runs. Both are entered after fork and before exec, so the program
// itself runs there from its first instruction; a failure to enter exits the child with 126
// (netns) or 125 (cgroup), saying why on its stderr.
struct Placement {
    std::string netns;   // a name under /var/run/netns; "" keeps the parent's
    std::string cgroup;  // a cgroup2 directory the child joins; "" keeps the parent's
};

// Runs argv to completion, capturing stdout and stderr.
CommandResult run_command(const std::vector<std::string>& argv, const Placement& where = {});
// Runs the tcpshift binary under test with these arguments.
CommandResult tcpshift(const std::vector<std::string>& args);

// A process started in a network namespace (setns before exec). It is killed with SIGKILL and
// reaped when the object goes away.
class Child {
   public:
    // Starts argv in `netns` (a name under /var/run/netns, or "" for the current one) and waits
    // up to `ready_within` for its first line of stdout (zero: does not wait). With
    // `stderr_path`, stderr goes to that file. With `cgroup` (a cgroup2 directory), the child
    // joins it before exec.
    static Child start(const std::string& netns, const std::vector<std::string>& argv,
                       std::chrono::milliseconds ready_within = std::chrono::seconds(5),
                       const std::string& stderr_path = "", const std::string& cgroup = "");
    Child() = default;
    Child(Child&& other) noexcept;
    Child& operator=(Child&& other) noexcept;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child();

    pid_t pid() const { return pid_; }
    bool running() const { return pid_ > 0; }
    const std::string& first_line() const { return first_line_; }
    // Sends a signal and reaps; returns the wait status.
    int stop(int signal);
    // Waits up to `limit` for the process to exit by itself; returns its wait status, or
    // nothing when it still runs.
    std::optional<int> wait(std::chrono::milliseconds limit);

   private:
    pid_t pid_ = -1;
    std::string first_line_;
};

// A tcpshift-echo backend answering "PREFIX line" on `listen` ("127.0.0.1:9001").
Child start_echo(const std::string& netns, const std::string& listen, const std::string& prefix,
                 const std::vector<std::string>& extra = {});

}  // namespace tcpshift::testing
