// What `explain` says of a service's outlier policy: shown where connect-time backends are,
// with where it came from, and left out where only sockets serve.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "report/report.h"

namespace tcpshift {
namespace {

Plan pod_plan(bool remote, const OutlierPolicy& outlier) {
    auto v1 = *parse_endpoint("10.244.0.11:9000");
    auto v2 = *parse_endpoint("10.244.0.12:9000");
    return Plan{.services = {PlanService{
                    .name = "tcp-echo",
                    .subsets = {PlanSubset{.name = "v1",
                                           .weight = 20,
                                           .backends = {{.id = 0, .address = v1, .share = 0.2, .remote = remote}}},
                                PlanSubset{.name = "v2",
                                           .weight = 80,
                                           .backends = {{.id = 1, .address = v2, .share = 0.8, .remote = remote}}}},
                    .outlier = outlier}}};
}

TEST(Explain, SaysTheOutlierPolicyOfConnectTimeBackends) {
    struct Case {
        std::string desc;
        bool remote;
        OutlierPolicy outlier;
        std::string text;  // the line print_explain writes; empty: none
        nlohmann::json json;
    };
    const Case cases[] = {
        {.desc = "configured",
         .remote = true,
         .outlier = {.consecutive_errors = 3, .base_ejection_ms = 2000, .max_ejection_percent = 10,
                     .where = {"t.yaml", 7}},
         .text = "  outlier detection: eject after 3 failed connections in a row for 2 s (each ejection in a row "
                 "one more, up to 10x), at most 10% of the backends out (always one)  from t.yaml:7\n",
         .json = {{"consecutive_errors", 3},
                  {"base_ejection_ms", 2000},
                  {"max_ejection_percent", 10},
                  {"min_health_percent", 0},
                  {"from", "t.yaml:7"}}},
        {.desc = "the defaults",
         .remote = true,
         .outlier = {},
         .text = "  outlier detection: eject after 5 failed connections in a row for 30 s (each ejection in a row "
                 "one more, up to 10x)  (default)\n",
         .json = {{"consecutive_errors", 5},
                  {"base_ejection_ms", 30000},
                  {"max_ejection_percent", 100},
                  {"min_health_percent", 0},
                  {"from", "default"}}},
        {.desc = "off",
         .remote = true,
         .outlier = {.consecutive_errors = 0, .where = {"t.yaml", 9}},
         .text = "  outlier detection: off: failed connections never eject a backend  from t.yaml:9\n",
         .json = {{"consecutive_errors", 0},
                  {"base_ejection_ms", 30000},
                  {"max_ejection_percent", 100},
                  {"min_health_percent", 0},
                  {"from", "t.yaml:9"}}},
        {.desc = "socket backends only", .remote = false, .outlier = {}, .text = "", .json = nullptr},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        const Plan plan = pod_plan(c.remote, c.outlier);
        std::ostringstream out;
        print_explain(plan, out);
        if (c.text.empty()) {
            EXPECT_EQ(out.str().find("outlier detection"), std::string::npos) << out.str();
        } else {
            EXPECT_NE(out.str().find(c.text), std::string::npos) << out.str();
        }
        EXPECT_EQ(explain_json(plan)["services"][0]["outlier_detection"], c.json);
    }
}

}  // namespace
}  // namespace tcpshift
