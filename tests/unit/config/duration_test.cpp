// Durations as Istio writes them, read into milliseconds, and said back for people.
#include "config/duration.h"

#include <gtest/gtest.h>

#include <string>

#include "test_names.h"

namespace tcpshift {
namespace {

TEST(Duration, ReadsIstioDurations) {
    struct Case {
        std::string text;
        uint64_t ms;
    };
    const Case cases[] = {
        {.text = "30s", .ms = 30000},     {.text = "1.5s", .ms = 1500},     {.text = "500ms", .ms = 500},
        {.text = "1m", .ms = 60000},      {.text = "1h", .ms = 3600000},    {.text = "1h30m", .ms = 5400000},
        {.text = "2m0.5s", .ms = 120500}, {.text = "0.001s", .ms = 1},      {.text = "0", .ms = 0},
        {.text = "0s", .ms = 0},          {.text = ".5s", .ms = 500},       {.text = "1.25m", .ms = 75000},
        {.text = "2400h", .ms = 8640000000ull},
    };
    for (const auto& c : cases) {
        auto ms = parse_duration_ms(c.text);
        ASSERT_TRUE(ms) << c.text << ": " << ms.error().message;
        EXPECT_EQ(*ms, c.ms) << c.text;
    }
}

TEST(Duration, RefusesWhatIsNotOneAndSaysWhy) {
    struct Case {
        std::string desc;
        std::string text;
        std::string why;
    };
    const Case cases[] = {
        {.desc = "empty", .text = "", .why = "it is empty"},
        {.desc = "no unit", .text = "30", .why = "each number needs a unit: h, m, s or ms"},
        {.desc = "unknown unit", .text = "30x", .why = "each number needs a unit"},
        {.desc = "upper-case unit", .text = "30S", .why = "each number needs a unit"},
        {.desc = "a space", .text = "30 s", .why = "each number needs a unit"},
        {.desc = "negative", .text = "-1s", .why = "no sign is allowed"},
        {.desc = "plus sign", .text = "+1s", .why = "no sign is allowed"},
        {.desc = "unit alone", .text = "s", .why = "a number is missing"},
        {.desc = "trailing number", .text = "1s5", .why = "each number needs a unit"},
        {.desc = "below a millisecond", .text = "1.5ms", .why = "finer than a millisecond"},
        {.desc = "microseconds in seconds", .text = "0.0001s", .why = "finer than a millisecond"},
        {.desc = "too many digits", .text = "12345678901s", .why = "too many digits"},
        {.desc = "above 100 days", .text = "2401h", .why = "longer than 100 days"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.desc);
        auto ms = parse_duration_ms(c.text);
        ASSERT_FALSE(ms) << c.text << " was accepted as " << *ms;
        EXPECT_EQ(ms.error().kind, ErrorKind::kConfig);
        EXPECT_NE(ms.error().message.find("\"" + c.text + "\" is not a duration such as 30s"), std::string::npos)
            << ms.error().message;
        EXPECT_NE(ms.error().message.find(c.why), std::string::npos) << ms.error().message;
    }
}

TEST(Duration, SaysADurationInItsLargestWholeUnit) {
    struct Case {
        uint64_t ms;
        std::string text;
    };
    const Case cases[] = {
        {.ms = 0, .text = "0 ms"},        {.ms = 500, .text = "500 ms"}, {.ms = 1000, .text = "1 s"},
        {.ms = 1500, .text = "1.5 s"},    {.ms = 2250, .text = "2.25 s"}, {.ms = 30000, .text = "30 s"},
        {.ms = 90000, .text = "90 s"},    {.ms = 120000, .text = "2 min"}, {.ms = 1001, .text = "1.001 s"},
        {.ms = 3600000, .text = "1 h"},   {.ms = 86400000, .text = "24 h"}, {.ms = 5400000, .text = "90 min"},
    };
    for (const auto& c : cases) EXPECT_EQ(duration_str(c.ms), c.text) << c.ms;
}

}  // namespace
}  // namespace tcpshift
