#include "connect_fixture.h"

#include "stats.h"

namespace tcpshift::testing {

std::vector<BackendPodSpec> tcp_echo_pods() {
    return {{.name = "v1", .index = 11, .word = "one"}, {.name = "v2", .index = 12, .word = "two"}};
}

std::string traffic_shift(const std::string& name, const std::vector<std::string>& listen,
                          const std::vector<ShiftSubset>& subsets, const std::string& affinity) {
    const auto quoted = [](const std::vector<std::string>& items) {
        std::string list;
        for (const auto& item : items) list += (list.empty() ? "\"" : ", \"") + item + "\"";
        return "[" + list + "]";
    };
    std::string yaml = "apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: " + name +
                       "}\nspec:\n  listen: " + quoted(listen) + "\n  affinity: " + affinity + "\n  subsets:\n";
    for (const auto& s : subsets)
        yaml += "  - {name: " + s.name + ", weight: " + std::to_string(s.weight) + ", backends: " + quoted(s.backends) +
                "}\n";
    return yaml;
}

AttachedNode::AttachedNode(const std::vector<BackendPodSpec>& backends) {
    for (const auto& b : backends) backends_.push_back(pods_.add_pod(b.name, b.index));
    client_ = pods_.add_pod("client", kClientIndex);
    if (!pods_.ok() || !cgroup_.ok()) return;
    for (size_t i = 0; i < backends.size(); ++i) {
        const Pod& pod = backends_[i];
        servers_.push_back(start_echo(pod.netns, pod.ipv4_endpoint(kEchoPort), backends[i].word,
                                      {"--listen", pod.ipv6_endpoint(kEchoPort), "--v6only"}));
        if (!servers_.back().first_line().starts_with("listening on")) {
            error_ = "tcpshift-echo " + backends[i].word + " did not start in " + pod.netns;
            return;
        }
    }
    const auto attach = tcpshift_node({"attach", "--cgroup", cgroup_.path()});
    if (attach.exit_code != 0) {
        error_ = "tcpshift attach --cgroup " + cgroup_.path() + ": " + attach.err;
        return;
    }
    attached_ = true;
}

AttachedNode::~AttachedNode() {
    if (attached_) detach();
    servers_.clear();
}

std::string AttachedNode::error() const {
    if (!pods_.ok()) return pods_.error();
    if (!cgroup_.ok()) return cgroup_.error();
    return error_;
}

CommandResult AttachedNode::tcpshift_node(std::vector<std::string> args) const {
    args.push_back("--netns");
    args.push_back(pods_.netns());
    return tcpshift(args);
}

void AttachedNode::apply(const std::string& yaml) const {
    const auto r = tcpshift_node({"apply", "-f", write_temp_file("connect.yaml", yaml)});
    EXPECT_EQ(r.exit_code, 0) << "apply to " << pods_.netns() << ": " << r.err << "\n" << yaml;
}

nlohmann::json AttachedNode::stats() const {
    const auto r = tcpshift_node({"stats", "--json"});
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (r.exit_code != 0 || j.is_discarded()) {
        ADD_FAILURE() << "tcpshift stats --json in " << pods_.netns() << " exited " << r.exit_code << ": " << r.err;
        return nlohmann::json::object();
    }
    return j;
}

bool AttachedNode::detach() {
    if (!attached_) return true;
    attached_ = false;
    const auto r = tcpshift_node({"detach"});
    EXPECT_EQ(r.exit_code, 0) << "detach from " << pods_.netns() << ": " << r.err;
    return r.exit_code == 0;
}

nlohmann::json AttachedNode::load(const LoadOptions& options, const Pod* from) const {
    const Pod& pod = from ? *from : client_;
    return run_loadgen(pod.netns, cgroup_.path(), options);
}

bool answers(const AttachedNode& node, const std::string& target, const Pod* from) {
    constexpr uint64_t kProbes = 20;
    const auto summary =
        node.load({.target = target, .connections = kProbes, .concurrency = 4, .extra = {"--timeout-ms", "500"}}, from);
    EXPECT_EQ(summary.value("ok", uint64_t{0}), kProbes) << target << " does not answer: " << summary.dump();
    return summary.value("ok", uint64_t{0}) == kProbes;
}

uint64_t replies(const nlohmann::json& summary, const std::string& word) {
    const auto by_reply = summary.value("by_reply", nlohmann::json::object());
    return by_reply.value(word, uint64_t{0});
}

void expect_all_answered(const nlohmann::json& summary, uint64_t connections) {
    EXPECT_EQ(summary.value("ok", uint64_t{0}), connections) << summary.dump();
    EXPECT_EQ(summary.value("failed", uint64_t{1}), 0u) << summary.dump();
}

void expect_split(const nlohmann::json& summary, const std::vector<std::string>& words,
                  const std::vector<double>& weights) {
    std::vector<uint64_t> observed;
    uint64_t total = 0;
    for (size_t i = 0; i < words.size(); ++i) {
        observed.push_back(replies(summary, words[i]));
        total += observed.back();
        if (weights[i] == 0) {
            EXPECT_EQ(observed.back(), 0u) << words[i] << " has weight 0: " << summary.dump();
        }
    }
    EXPECT_EQ(total, summary.value("ok", uint64_t{0})) << "a word outside the split answered: " << summary.dump();
    const SplitVerdict v = chi_square_split(observed, weights);
    // The figures go to the test report (--gtest_output=xml), each split under a key of its own.
    static int splits = 0;
    std::string figures;
    for (size_t i = 0; i < words.size(); ++i)
        figures += words[i] + "=" + std::to_string(observed[i]) + " (weight " +
                   std::to_string(static_cast<int>(weights[i])) + ") ";
    ::testing::Test::RecordProperty("split_" + std::to_string(++splits), figures + "p=" + std::to_string(v.p_value));
    EXPECT_GE(v.p_value, kAlpha) << "split rejected (chi-square " << v.chi_square << ", p " << v.p_value << "):\n"
                                 << v.table << summary.dump();
}

std::map<std::string, uint64_t> opened_by_backend(const nlohmann::json& stats) {
    std::map<std::string, uint64_t> opened;
    for (const auto& b : stats.value("backends", nlohmann::json::array()))
        opened[b.value("address", "")] = b.value("opened", uint64_t{0});
    return opened;
}

uint64_t connect_rewrites(const nlohmann::json& stats) {
    uint64_t rewrites = 0;
    for (const auto& s : stats.value("services", nlohmann::json::array()))
        rewrites += s.value("connect_rewrites", uint64_t{0});
    return rewrites;
}

void expect_opened_match_replies(const nlohmann::json& before, const nlohmann::json& after,
                                 const std::map<std::string, std::string>& word_of, const nlohmann::json& summary) {
    auto was = opened_by_backend(before);
    const auto now = opened_by_backend(after);
    for (const auto& [address, word] : word_of) {
        ASSERT_TRUE(now.count(address)) << address << " is not a backend in stats: " << after.dump();
        EXPECT_EQ(now.at(address) - was[address], replies(summary, word))
            << address << " (" << word << "): opened " << was[address] << " -> " << now.at(address) << ", replies "
            << summary.dump();
    }
}

void ConnectTest::SetUp() {
    TCPSHIFT_REQUIRE_ROOT();
    node_ = std::make_unique<AttachedNode>(tcp_echo_pods());
    ASSERT_TRUE(node_->ok()) << node_->error();
}

void ConnectTest::TearDown() {
    if (!node_) return;
    node_->detach();
    node_.reset();
}

}  // namespace tcpshift::testing
