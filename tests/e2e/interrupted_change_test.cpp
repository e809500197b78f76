// A change whose command is killed while it writes the maps, in a namespace: the maps then
// hold parts of two sets, readers say so instead of reporting either, and the next change of
// any kind mends them first: the set before it goes back in whole, or, when the stopped
// change had already stored its set, that set becomes the applied one. Traffic of both
// families follows what the stored set says, and verify finds the maps in sync.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "client.h"
#include "lifecycle_fixture.h"
#include "report_json.h"

namespace tcpshift::testing {
namespace {

// v1 takes every connection: a table left shifted by a stopped change sends some to v2.
constexpr const char* kAllToV1 = R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata:
  name: tcp-echo
spec:
  listen: ["127.0.0.1:31400", "[::1]:31400"]
  subsets:
  - name: v1
    weight: 100
    backends: ["127.0.0.1:9001", "[::1]:9001"]
  - name: v2
    weight: 0
    backends: ["127.0.0.1:9002", "[::1]:9002"]
)";

// A second service on another port, to v2.
constexpr const char* kOther = R"(---
apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata:
  name: other
spec:
  listen: ["127.0.0.1:31500"]
  subsets:
  - name: only
    weight: 100
    backends: ["127.0.0.1:9002"]
)";

constexpr const char* kStopped = "stopped while it wrote the maps";

class InterruptedChangeTest : public LifecycleTest {
   protected:
    void SetUp() override {
        LifecycleTest::SetUp();
        v1_ = start_echo(netns(), "[::]:9001", "one");
        v2_ = start_echo(netns(), "[::]:9002", "two");
    }
    // Runs tcpshift with the failpoint armed to kill it there, and expects it killed.
    void killed_at(const std::string& failpoint, std::vector<std::string> args) {
        ::setenv("TCPSHIFT_FAILPOINT", (failpoint + ":kill").c_str(), 1);  // the child inherits it
        const auto r = tcpshift_here(std::move(args));
        ::unsetenv("TCPSHIFT_FAILPOINT");
        ASSERT_EQ(r.exit_code, 128 + 9) << "not killed at " << failpoint << ": " << r.err;
    }
    // Readers refuse to report maps that hold no one set, and say why.
    void expect_readers_name_the_interruption() {
        for (const char* verb : {"status", "verify", "stats"}) {
            const auto r = tcpshift_here({verb});
            EXPECT_NE(r.exit_code, 0) << verb << " reported maps a stopped change left:\n" << r.out;
            EXPECT_NE(r.err.find(kStopped), std::string::npos) << verb << ": " << r.err;
        }
    }
    // Every connection of both families reaches `reply`.
    void expect_all_to(const std::string& reply) {
        auto in = enter();
        for (const char* frontend : {"127.0.0.1:31400", "[::1]:31400"}) {
            const Tally t = tally(endpoint(frontend), 60);
            EXPECT_EQ(t.failures, 0u) << frontend;
            EXPECT_EQ(t[reply], 60u) << frontend << ": " << t["one"] << " one, " << t["two"] << " two";
        }
    }
    void expect_in_sync() {
        const auto r = tcpshift_here({"verify"});
        EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    }

    Child v1_, v2_;
};

// Killed after the shifted table went live and before anything else: the next change, which
// leaves tcp-echo as stored and adds another service, puts tcp-echo's table back too.
TEST_F(InterruptedChangeTest, AChangeKilledAfterItsTablesIsPutBackByTheNextChange) {
    apply(kAllToV1);
    killed_at("install-after-tables", {"set", "tcp-echo", "v1=0", "v2=100"});
    expect_readers_name_the_interruption();

    const auto r = tcpshift_here({"apply", "-f", write_temp_file("both.yaml", std::string(kAllToV1) + kOther)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("put applied set #1 back"), std::string::npos) << r.err;
    expect_all_to("one");
    expect_in_sync();
    auto in = enter();
    EXPECT_EQ(tally(endpoint("127.0.0.1:31500"), 20)["two"], 20u) << "the change after the repair went in";
}

// Killed after everything went in but before the set was stored, with a new service among it:
// even a change that finds nothing to change (the weights the stored set already has) takes
// the new service's frontend out again and puts the old weights back.
TEST_F(InterruptedChangeTest, AChangeKilledBeforeItsSetWasStoredIsTakenOutWhole) {
    apply(kAllToV1);
    std::string shifted = std::string(kAllToV1) + kOther;
    shifted.replace(shifted.find("weight: 100"), 11, "weight: 0  ");
    shifted.replace(shifted.find("weight: 0\n"), 9, "weight: 100");
    killed_at("commit-before-save", {"apply", "-f", write_temp_file("shifted.yaml", shifted)});
    {
        auto in = enter();
        EXPECT_EQ(tally(endpoint("127.0.0.1:31500"), 5)["two"], 5u) << "the killed change had gone in whole";
    }
    expect_readers_name_the_interruption();
    const auto r = tcpshift_here({"set", "tcp-echo", "v1=100"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("put applied set #1 back"), std::string::npos) << r.err;
    expect_all_to("one");
    expect_in_sync();
    auto in = enter();
    const Tally gone = tally(endpoint("127.0.0.1:31500"), 5, std::chrono::milliseconds(500));
    EXPECT_EQ(gone.failures, 5u) << "the stopped change's frontend still steers";
}

// Killed after the set was stored, before the maps' serial moved: the change was whole, and
// the next one makes it the applied set instead of refusing a namespace whose serials differ.
TEST_F(InterruptedChangeTest, AChangeKilledAfterItsSetWasStoredIsKept) {
    apply(kAllToV1);
    killed_at("commit-before-serial", {"set", "tcp-echo", "v1=0", "v2=100"});
    expect_readers_name_the_interruption();

    const auto r = tcpshift_here({"set", "tcp-echo", "v2=100"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("applied set #2 is now the applied set"), std::string::npos) << r.err;
    const auto status = tcpshift_here({"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    EXPECT_EQ(applied_weights(nlohmann::json::parse(status.out))["v2"], 100u);
    expect_all_to("two");
    expect_in_sync();
}

}  // namespace
}  // namespace tcpshift::testing
