#include "report/metrics.h"

#include <gtest/gtest.h>

#include "client.h"

namespace tcpshift {
namespace {

Plan two_subset_plan() {
    auto v1 = *parse_endpoint("127.0.0.1:9001");
    auto v2 = *parse_endpoint("127.0.0.1:9002");
    return Plan{.services = {PlanService{
                    .name = "tcp-echo",
                    .id = 0,
                    .subsets = {PlanSubset{.name = "v1", .weight = 20, .backends = {{.id = 0, .address = v1}}},
                                PlanSubset{.name = "v2", .weight = 80, .backends = {{.id = 1, .address = v2}}}}}}};
}

TEST(Metrics, RendersIstioAndTcpshiftFamilies) {
    MetricsFacts facts{
        .stats = {.services = {{0, ServiceCounters{.lookups = 10, .fallbacks = 1, .no_backend = 2}}},
                  .backends = {{0, BackendCounters{.steered = 3, .opened = 99, .closed = 98}}},
                  .routes = {{{0, 0}, BackendCounters{.steered = 3, .opened = 4, .closed = 3, .bytes_sent = 40,
                                                       .bytes_received = 30}}}},
        .ready = {0},
        .reloads = {{"success", 2}},
        .ejections = {{1, 3}},
    };
    const std::string text = render_metrics(two_subset_plan(), facts);
    using testing::metric_value;
    const std::string v1 =
        R"({reporter="destination",destination_service="tcp-echo",destination_version="v1",destination_workload="127.0.0.1:9001"})";
    EXPECT_EQ(metric_value(text, "istio_tcp_connections_opened_total" + v1), 4);
    EXPECT_EQ(metric_value(text, "istio_tcp_connections_closed_total" + v1), 3);
    EXPECT_EQ(metric_value(text, "istio_tcp_sent_bytes_total" + v1), 40);
    EXPECT_EQ(metric_value(text, "istio_tcp_received_bytes_total" + v1), 30);
    EXPECT_EQ(metric_value(text, R"(tcpshift_lookups_total{service="tcp-echo"})"), 10);
    EXPECT_EQ(metric_value(text, R"(tcpshift_fallback_total{service="tcp-echo"})"), 1);
    EXPECT_EQ(metric_value(text, R"(tcpshift_no_backend_total{service="tcp-echo"})"), 2);
    EXPECT_EQ(metric_value(text, R"(tcpshift_steered_total{service="tcp-echo",subset="v1"})"), 3);
    EXPECT_EQ(metric_value(text, R"(tcpshift_backend_ready{service="tcp-echo",subset="v1",backend="127.0.0.1:9001"})"), 1);
    EXPECT_EQ(metric_value(text, R"(tcpshift_backend_ready{service="tcp-echo",subset="v2",backend="127.0.0.1:9002"})"), 0);
    EXPECT_EQ(metric_value(text, R"(tcpshift_connections_active{service="tcp-echo",subset="v1",backend="127.0.0.1:9001"})"), 1);
    EXPECT_EQ(metric_value(text, R"(tcpshift_weight{service="tcp-echo",subset="v2"})"), 80);
    EXPECT_EQ(metric_value(text, R"(tcpshift_config_reloads_total{result="success"})"), 2);
    EXPECT_EQ(metric_value(text, R"(tcpshift_config_reloads_total{result="error"})"), 0);
    EXPECT_EQ(metric_value(text, R"(tcpshift_backend_ejections_total{service="tcp-echo",subset="v1",backend="127.0.0.1:9001"})"), 0);
    EXPECT_EQ(metric_value(text, R"(tcpshift_backend_ejections_total{service="tcp-echo",subset="v2",backend="127.0.0.1:9002"})"), 3);
    EXPECT_NE(text.find("# TYPE istio_tcp_connections_opened_total counter\n"), std::string::npos);
    EXPECT_NE(text.find("# TYPE tcpshift_backend_ready gauge\n"), std::string::npos);
}

// The kernel's SLIs: failures by reason, and Prometheus histograms whose buckets accumulate,
// in seconds, with +Inf, _sum and _count.
TEST(Metrics, RendersFailuresByReasonAndSliHistograms) {
    BackendSli sli{.reset_after_data = 4, .retransmits = 9};
    sli.rtt_us.buckets[0] = 2;   // under 16 us
    sli.rtt_us.buckets[2] = 3;   // 32-64 us
    sli.rtt_us.buckets[15] = 1;  // past the last bound
    sli.rtt_us.count = 6;
    sli.rtt_us.sum = 500000;
    sli.duration_us.buckets[5] = 1;  // 256 ms - 1 s
    sli.duration_us.count = 1;
    sli.duration_us.sum = 700000;
    MetricsFacts facts{.stats = {.sli = {{1, sli}},
                                 .failures = {{1, BackendFailures{.before_data = 7, .listen_overflows = 2}},
                                              {0, BackendFailures{.remote = true, .before_data = 5}}}}};
    const std::string text = render_metrics(two_subset_plan(), facts);
    using testing::metric_value;
    const std::string v2 = R"(service="tcp-echo",subset="v2",backend="127.0.0.1:9002")";
    const std::string v1 = R"(service="tcp-echo",subset="v1",backend="127.0.0.1:9001")";
    EXPECT_EQ(metric_value(text, "tcpshift_connection_failures_total{" + v2 + R"(,reason="closed_before_data"})"), 7);
    EXPECT_EQ(metric_value(text, "tcpshift_connection_failures_total{" + v2 + R"(,reason="listen_overflow"})"), 2);
    EXPECT_EQ(metric_value(text, "tcpshift_connection_failures_total{" + v2 + R"(,reason="reset_after_data"})"), 4);
    EXPECT_EQ(metric_value(text, "tcpshift_connection_failures_total{" + v1 + R"(,reason="handshake_failed"})"), 5)
        << "a connect-time backend's failures are its handshakes";
    EXPECT_EQ(metric_value(text, "tcpshift_retransmits_total{" + v2 + "}"), 9);
    EXPECT_NE(text.find("# TYPE tcpshift_connection_rtt_seconds histogram\n"), std::string::npos);
    EXPECT_EQ(metric_value(text, "tcpshift_connection_rtt_seconds_bucket{" + v2 + R"(,le="1.6e-05"})"), 2);
    EXPECT_EQ(metric_value(text, "tcpshift_connection_rtt_seconds_bucket{" + v2 + R"(,le="3.2e-05"})"), 2);
    EXPECT_EQ(metric_value(text, "tcpshift_connection_rtt_seconds_bucket{" + v2 + R"(,le="6.4e-05"})"), 5);
    EXPECT_EQ(metric_value(text, "tcpshift_connection_rtt_seconds_bucket{" + v2 + R"(,le="0.262144"})"), 5);
    EXPECT_EQ(metric_value(text, "tcpshift_connection_rtt_seconds_bucket{" + v2 + R"(,le="+Inf"})"), 6);
    EXPECT_EQ(metric_value(text, "tcpshift_connection_rtt_seconds_count{" + v2 + "}"), 6);
    EXPECT_NE(text.find("tcpshift_connection_rtt_seconds_sum{" + v2 + "} 0.5\n"), std::string::npos) << text;
    EXPECT_EQ(metric_value(text, "tcpshift_connection_duration_seconds_bucket{" + v2 + R"(,le="0.256"})"), 0);
    EXPECT_EQ(metric_value(text, "tcpshift_connection_duration_seconds_bucket{" + v2 + R"(,le="1.024"})"), 1);
    EXPECT_NE(text.find("tcpshift_connection_duration_seconds_sum{" + v2 + "} 0.7\n"), std::string::npos) << text;
    EXPECT_EQ(metric_value(text, "tcpshift_connection_rtt_seconds_count{" + v1 + "}"), 0);
}

// A backend shared by two services: each service's samples count its own connections.
TEST(Metrics, ABackendSharedByTwoServicesIsCountedPerService) {
    Plan plan = two_subset_plan();
    PlanService other = plan.services[0];
    other.name = "other";
    other.id = 1;
    other.subsets.resize(1);
    plan.services.push_back(other);
    MetricsFacts facts{.stats = {.backends = {{0, BackendCounters{.opened = 7}}},
                                 .routes = {{{0, 0}, BackendCounters{.opened = 5}}, {{1, 0}, BackendCounters{.opened = 2}}}}};
    const std::string text = render_metrics(plan, facts);
    using testing::metric_value;
    auto opened = [&](const char* service) {
        return metric_value(text, std::string("istio_tcp_connections_opened_total{reporter=\"destination\",destination_service=\"") +
                                      service + R"(",destination_version="v1",destination_workload="127.0.0.1:9001"})");
    };
    EXPECT_EQ(opened("tcp-echo"), 5);
    EXPECT_EQ(opened("other"), 2);
}

TEST(Metrics, EscapesLabelValues) {
    Plan plan = two_subset_plan();
    plan.services[0].name = "a\"b\\c";
    const std::string text = render_metrics(plan, {});
    EXPECT_NE(text.find(R"(tcpshift_lookups_total{service="a\"b\\c"} 0)"), std::string::npos) << text;
}

}  // namespace
}  // namespace tcpshift
