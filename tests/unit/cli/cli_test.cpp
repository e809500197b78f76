#include <gtest/gtest.h>

#include "test_names.h"
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "netns_fixture.h"
#include "cli/cli.h"

namespace tcpshift {
namespace {

struct CliRun {
    int code = -1;
    std::string out, err;
};

CliRun cli(std::vector<std::string> args) {
    args.insert(args.begin(), "tcpshift");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    std::ostringstream out, err;
    CliRun r;
    r.code = exit_status(run_cli(static_cast<int>(argv.size()), argv.data(), Streams{.out = out, .err = err}), err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

constexpr const char* kConfig = R"(apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata:
  name: tcp-echo
spec:
  listen: ["0.0.0.0:31400"]
  subsets:
  - name: v1
    weight: 20
    backends: ["127.0.0.1:9001"]
  - name: v2
    weight: 80
    backends: ["127.0.0.1:9002"]
)";

TEST(Cli, HelpTeachesAndExitsZero) {
    const CliRun r = cli({"--help"});
    EXPECT_EQ(r.code, 0);
    for (const char* want : {"apply", "set", "status", "stats", "explain", "detach", "Examples:", "Exit status"})
        EXPECT_NE(r.out.find(want), std::string::npos) << want;
}

TEST(Cli, SubcommandHelpNamesItsOptions) {
    const CliRun r = cli({"apply", "--help"});
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("--dry-run"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--netns"), std::string::npos) << r.out;
}

struct UsageCase {
    const char* desc;
    std::vector<std::string> args;
    std::string want;
};

void PrintTo(const UsageCase& c, std::ostream* os) { *os << c.desc; }

class CliUsageTest : public ::testing::TestWithParam<UsageCase> {};

TEST_P(CliUsageTest, ExitsTwoWithOneLine) {
    const auto& c = GetParam();
    const CliRun r = cli(c.args);
    EXPECT_EQ(r.code, 2) << c.desc << ": " << r.err;
    EXPECT_NE(r.err.find(c.want), std::string::npos) << c.desc << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Table, CliUsageTest,
    ::testing::Values(UsageCase{.desc = "no command", .args = {}, .want = "tcpshift:"},
                      UsageCase{.desc = "unknown command", .args = {"frobnicate"}, .want = "frobnicate"},
                      UsageCase{.desc = "apply without file", .args = {"apply"}, .want = "--filename"},
                      UsageCase{.desc = "set without weights", .args = {"set", "tcp-echo"}, .want = "weights"},
                      UsageCase{.desc = "set bad pair", .args = {"set", "tcp-echo", "v1"}, .want = "not SUBSET=WEIGHT"},
                      UsageCase{.desc = "set bad weight", .args = {"set", "tcp-echo", "v1=-3"},
                                .want = "weight \"-3\" must be an integer from 0 to 1000000"},
                      UsageCase{.desc = "explain missing file", .args = {"explain", "-f", "/nonexistent.yaml"},
                                .want = "/nonexistent.yaml: no such file or directory"}),
    [](const auto& info) { return test_case_name(info.param.desc); });

TEST(Cli, ExplainPrintsSharesAndWhereTheyCameFrom) {
    const auto path = testing::write_temp_file("explain.yaml", kConfig);
    const CliRun r = cli({"explain", "-f", path});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("service tcp-echo"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("frontend 0.0.0.0:31400  from " + path + ":6"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("20.0%"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(path + ":12"), std::string::npos) << r.out;
}

TEST(Cli, ExplainJsonIsMachineReadable) {
    const auto path = testing::write_temp_file("explain.yaml", kConfig);
    const CliRun r = cli({"explain", "-f", path, "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["services"][0]["service"], "tcp-echo");
    EXPECT_DOUBLE_EQ(j["services"][0]["subsets"][1]["percent"].get<double>(), 80.0);
    EXPECT_EQ(j["services"][0]["subsets"][0]["backends"][0]["address"], "127.0.0.1:9001");
}

TEST(Cli, ExplainRefusesABadFileWithFileLine) {
    std::string bad = kConfig;
    bad.replace(bad.find("weight: 80"), 10, "weight: eighty");
    const auto path = testing::write_temp_file("bad.yaml", bad);
    const CliRun r = cli({"explain", "-f", path});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err, "tcpshift: " + path + ":12: spec.subsets[1].weight: \"eighty\" is not an integer\n");
}

// `explain` reads files as `apply` does: in the order given, the later definition winning.
TEST(Cli, ExplainTakesTheLaterOfTwoDefinitionsAsApplyDoes) {
    std::string shifted = kConfig;
    shifted.replace(shifted.find("weight: 20"), 10, "weight: 50");
    shifted.replace(shifted.find("weight: 80"), 10, "weight: 50");
    const auto first = testing::write_temp_file("20-80.yaml", kConfig);
    const auto later = testing::write_temp_file("50-50.yaml", shifted);
    CliRun r = cli({"explain", "-f", first, later});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("50.0%"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("20.0%"), std::string::npos) << r.out;
    EXPECT_EQ(r.err, "note: " + later + ":1: TrafficShift \"tcp-echo\" in namespace default replaces the one at " +
                         first + ":1 (a later -f wins, as with kubectl apply)\n");

    r = cli({"explain", "-f", later, "-f", first});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("20.0%"), std::string::npos) << r.out;
}

TEST(Cli, VersionPrints) {
    const CliRun r = cli({"version"});
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.out, std::string("tcpshift ") + TCPSHIFT_VERSION + "\n");
}

// Runs the CLI as the unprivileged user nobody in a child process.
CliRun cli_as_nobody(std::vector<std::string> args) {
    int out_pipe[2];
    if (::pipe(out_pipe) != 0) return {};
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(out_pipe[0]);
        if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) ::_exit(99);
        const CliRun r = cli(args);
        const std::string msg = r.err;
        (void)!::write(out_pipe[1], msg.data(), msg.size());
        ::_exit(r.code);
    }
    ::close(out_pipe[1]);
    CliRun r;
    char buf[1024];
    ssize_t n;
    while ((n = ::read(out_pipe[0], buf, sizeof(buf))) > 0) r.err.append(buf, static_cast<size_t>(n));
    ::close(out_pipe[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

TEST(Cli, PrivilegedVerbsRefuseAnUnprivilegedUser) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to the user nobody";
    const auto path = testing::write_temp_file("cfg.yaml", kConfig);
    ::chmod(path.c_str(), 0644);
    ::chmod(std::filesystem::path(path).parent_path().c_str(), 0755);
    const std::vector<std::vector<std::string>> verbs = {
        {"attach"}, {"apply", "-f", path}, {"set", "tcp-echo", "v1=1"}, {"status"}, {"stats"}, {"detach"}};
    for (const auto& verb : verbs) {
        const CliRun r = cli_as_nobody(verb);
        EXPECT_EQ(r.code, 1) << verb[0] << ": " << r.err;
        EXPECT_NE(r.err.find("tcpshift " + verb[0] + ": needs root"), std::string::npos) << r.err;
    }
    // explain needs no privilege.
    const CliRun r = cli_as_nobody({"explain", "-f", path});
    EXPECT_EQ(r.code, 0) << r.err;
}

}  // namespace
}  // namespace tcpshift
