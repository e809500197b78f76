// The steering tests' fixture and helpers: TrafficShift text for real tcp-echo backends, and
// a split judged by a chi-square test at alpha = 0.001 over enough connections: 2000 per phase
// detect a 5-point deviation of the smallest share (tests/unit/stats_test.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "client.h"
#include "netns_fixture.h"
#include "process.h"
#include "base/endpoint.h"

namespace tcpshift::testing {

inline constexpr size_t kConnections = 2000;

class SteeringTest : public NetnsTest {
   protected:
    // Exact accounting across a weight change while handshakes are in flight, with SYN
    // cookies always on or not (steering_handshake_test.cpp).
    void expect_exact_counts_across_a_flip_mid_handshake(bool syn_cookies);
    // Holds the handshakes of n clients half-way, checks that no backend has opened more than
    // the `served_before` connections, sets 70/30, then lets the handshakes complete; their
    // replies go to `held`.
    void flip_with_handshakes_held(size_t n, uint64_t served_before, Tally* held);
};

struct Subset {
    std::string name;
    int weight;
    std::vector<std::string> backends;
};

// A TrafficShift resource `name` listening on `listen` (a YAML list); `extra` is more of its
// spec, indented by two spaces.
std::string traffic_shift(const std::string& name, const std::string& listen, const std::vector<Subset>& subsets,
                          const std::string& extra = "");

// tcp-echo on 0.0.0.0:31400: v1 at 127.0.0.1:9001, v2 at 127.0.0.1:9002.
std::string tcp_echo(int v1, int v2);

// Holds every handshake to a port of the namespace half-way: an nftables rule drops the
// clients' packets to the port that carry an ACK without a SYN, so each SYN is looked up,
// steered and answered (the client is established), but the server sees the final ACK only
// when TCP retransmits it, with the client's data, after release(). netem, the usual way to
// slow a handshake, is not in the test host's kernel (CONFIG_NET_SCH_NETEM is not set, and it
// loads no modules), and a delay would leave the overlap with a flip to timing: this holds
// every handshake for exactly as long as the test needs.
class HeldHandshakes {
   public:
    HeldHandshakes(const std::string& netns, int port) : netns_(netns) {
        const std::string rules = "table inet tcpshift_test_hold {\n"
                                  "  chain out {\n"
                                  "    type filter hook output priority 0; policy accept;\n"
                                  "    tcp dport " +
                                  std::to_string(port) +
                                  " tcp flags & (syn | ack) == ack drop\n"
                                  "  }\n"
                                  "}\n";
        const auto r = run_command(
            {"/sbin/ip", "netns", "exec", netns_, "/usr/sbin/nft", "-f", write_temp_file("hold.nft", rules)});
        held_ = r.exit_code == 0;
        error_ = r.err;
    }
    ~HeldHandshakes() { release(); }
    HeldHandshakes(const HeldHandshakes&) = delete;
    HeldHandshakes& operator=(const HeldHandshakes&) = delete;

    bool held() const { return held_; }
    const std::string& error() const { return error_; }
    // Lets the final ACKs through; false when the rule could not be removed.
    bool release() {
        if (!held_) return true;
        held_ = false;
        return run_command({"/sbin/ip", "netns", "exec", netns_, "/usr/sbin/nft", "delete", "table", "inet",
                            "tcpshift_test_hold"})
                   .exit_code == 0;
    }

   private:
    std::string netns_;
    bool held_ = false;
    std::string error_;
};

// Sends n connections and judges the split of reply prefixes against the weights.
void expect_split(const Endpoint& target, const std::vector<std::string>& prefixes, const std::vector<double>& weights,
                  size_t n = kConnections);

}  // namespace tcpshift::testing
