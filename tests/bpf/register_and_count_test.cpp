// The sock_ops program on real sockets: attached to a cgroup the test creates, with the test
// process moved into it, in network namespaces the test unshares. It registers listeners as
// they start, accounts their connections, and looks at nothing of another namespace.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "netns_fixture.h"
#include "dataplane/dataplane.h"
#include "dataplane/pins.h"

namespace tcpshift {
namespace {

Endpoint ep(const std::string& text) { return *parse_endpoint(text); }

// Runs `body` on a thread of its own in a new network namespace with loopback up.
void in_new_netns(const std::function<void()>& body) {
    std::thread([&] {
        ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
        Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        ifreq ifr{};
        std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
        ASSERT_EQ(::ioctl(sock.get(), SIOCGIFFLAGS, &ifr), 0);
        ifr.ifr_flags |= IFF_UP;
        ASSERT_EQ(::ioctl(sock.get(), SIOCSIFFLAGS, &ifr), 0);
        body();
    }).join();
}

Fd listen_at(const Endpoint& at) {
    Fd fd(::socket(at.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    sockaddr_storage ss;
    const socklen_t len = to_sockaddr(at, &ss);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len), 0) << at.str() << ": " << std::strerror(errno);
    EXPECT_EQ(::listen(fd.get(), 16), 0);
    return fd;
}

// Connects to `to`, accepts on whichever of `listeners` takes it, sends a byte each way and
// closes, the client first. Returns the index of the listener that accepted, or -1.
int round_trip(const Endpoint& to, const std::vector<const Fd*>& listeners) {
    Fd client(::socket(to.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage ss;
    const socklen_t len = to_sockaddr(to, &ss);
    if (::connect(client.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return -1;
    std::vector<pollfd> fds;
    for (const Fd* l : listeners) fds.push_back({l->get(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 2000) <= 0) return -1;
    for (size_t i = 0; i < fds.size(); ++i) {
        if (!(fds[i].revents & POLLIN)) continue;
        Fd server(::accept4(listeners[i]->get(), nullptr, nullptr, SOCK_CLOEXEC));
        char byte = 'x';
        if (::write(client.get(), &byte, 1) != 1 || ::read(server.get(), &byte, 1) != 1) return -1;
        if (::write(server.get(), &byte, 1) != 1 || ::read(client.get(), &byte, 1) != 1) return -1;
        client.reset();
        (void)::read(server.get(), &byte, 1);  // the client's FIN
        return static_cast<int>(i);
    }
    return -1;
}

// Waits up to 2 s for `done` to hold.
bool eventually(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

class RegisterAndCountTest : public ::testing::Test {
   protected:
    void SetUp() override {
        TCPSHIFT_REQUIRE_ROOT();
        auto root = default_cgroup2();
        ASSERT_TRUE(root) << root.error().message;
        root_ = *root;
        cgroup_ = root_ + "/tcpshift-bpf-test-" + std::to_string(::getpid());
        ASSERT_EQ(::mkdir(cgroup_.c_str(), 0755), 0) << cgroup_ << ": " << std::strerror(errno);
        std::ifstream self("/proc/self/cgroup");
        for (std::string line; std::getline(self, line);)
            if (line.starts_with("0::")) home_ = root_ + line.substr(3);
        std::ofstream(cgroup_ + "/cgroup.procs") << ::getpid() << "\n";
    }
    void TearDown() override {
        steer_.reset();
        sockops_.reset();
        program_.reset();
        if (cgroup_.empty()) return;
        std::ofstream(home_.empty() ? root_ + "/cgroup.procs" : home_ + "/cgroup.procs") << ::getpid() << "\n";
        ::rmdir(cgroup_.c_str());
    }

    // Loads the programs for the calling thread's namespace, attaches sock_ops to the test's
    // cgroup and sk_lookup to the namespace, and installs one service: `frontend_` to
    // `backend_`.
    void attach() {
        auto netns = current_netns();
        ASSERT_TRUE(netns);
        netns_ = *netns;
        auto program = SteerProgram::load(0x5eed, netns_.cookie);
        ASSERT_TRUE(program) << program.error().message;
        program_ = std::make_unique<SteerProgram>(std::move(*program));
        auto maps = program_->maps();
        ASSERT_TRUE(maps);
        maps_ = std::move(*maps);
        Fd cgroup_fd(::open(cgroup_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        Fd netns_fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
        sockops_ =
            Fd(bpf_link_create(program_->register_and_count_fd(), cgroup_fd.get(), BPF_CGROUP_SOCK_OPS, nullptr));
        ASSERT_TRUE(sockops_) << "attach sock_ops to " << cgroup_ << ": " << std::strerror(errno);
        steer_ = Fd(bpf_link_create(program_->steer_fd(), netns_fd.get(), BPF_SK_LOOKUP, nullptr));
        ASSERT_TRUE(steer_) << std::strerror(errno);

        auto plan = compile_plan({ServiceSpec{.name = "svc",
                                              .listen = {frontend_},
                                              .subsets = {{.name = "v1", .weight = 1, .backends = {backend_}}}}},
                                 {}, default_limits());
        ASSERT_TRUE(plan);
        ASSERT_TRUE(install_listener_keys(maps_, *plan, nullptr, netns_));
        ASSERT_TRUE(install_plan(maps_, *plan, nullptr, netns_));
        plan_ = std::move(*plan);
    }

    uint32_t backend_id() const { return plan_.ids.backends.at(backend_.str()); }

    // Whether the backend's counters come to `opened` connections, all closed, `steered` of
    // them through the frontend.
    bool counted(uint64_t opened, uint64_t steered) const {
        return eventually([&] {
            auto c = read_backend_counters(maps_, backend_id());
            return c && c->opened == opened && c->closed == opened && c->steered == steered;
        });
    }

    const Endpoint backend_ = ep("127.0.0.1:9001"), frontend_ = ep("127.0.0.1:31400");
    std::string root_, cgroup_, home_;
    NetnsId netns_;
    std::unique_ptr<SteerProgram> program_;
    DataplaneMaps maps_;
    Fd sockops_, steer_;
    Plan plan_;
};

TEST_F(RegisterAndCountTest, RegistersListenersAndCountsOnlyItsOwnNamespace) {
    in_new_netns([&] {
        ASSERT_NO_FATAL_FAILURE(attach());
        const uint32_t id = backend_id();

        // Two members of a SO_REUSEPORT group register themselves as they listen.
        Fd a = listen_at(backend_), b = listen_at(backend_);
        auto cookies = backend_socket_cookies(maps_, id);
        ASSERT_TRUE(cookies);
        EXPECT_EQ(cookies->size(), 2u) << "both members of the group are the backend's listeners";
        auto ready = ready_backends(maps_, plan_, netns_);
        ASSERT_TRUE(ready);
        EXPECT_EQ(ready->size(), 1u);

        EXPECT_GE(round_trip(frontend_, {&a, &b}), 0) << "steered through the frontend";
        EXPECT_GE(round_trip(backend_, {&a, &b}), 0) << "direct to the backend";
        EXPECT_TRUE(counted(2, 1)) << "opened 2, steered 1, both closed";

        // The member that joined last leaves; the other still serves the frontend.
        b.reset();
        EXPECT_EQ(backend_socket_cookies(maps_, id)->size(), 1u);
        EXPECT_EQ(round_trip(frontend_, {&a}), 0);
        EXPECT_TRUE(counted(3, 2));

        // Another namespace on the same cgroup, with its own servers on the same ports and
        // no tcpshift: nothing of it is registered or counted here.
        in_new_netns([&] {
            Fd other_backend = listen_at(backend_), other_frontend = listen_at(frontend_);
            for (int i = 0; i < 5; ++i) {
                EXPECT_EQ(round_trip(frontend_, {&other_frontend}), 0);
                EXPECT_EQ(round_trip(backend_, {&other_backend}), 0);
            }
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        EXPECT_EQ(backend_socket_cookies(maps_, id)->size(), 1u) << "another namespace's listener registered";
        auto c = read_backend_counters(maps_, id);
        ASSERT_TRUE(c);
        EXPECT_EQ(c->opened, 3u) << "another namespace's connections were counted";
        EXPECT_EQ(c->steered, 2u);
        auto s = read_service_counters(maps_, plan_.services[0].id);
        ASSERT_TRUE(s);
        EXPECT_EQ(s->lookups, 2u) << "connections through the frontend";
        EXPECT_EQ(s->fallbacks, 0u);
    });
}

}  // namespace
}  // namespace tcpshift
