#include "config/duration.h"

#include <array>
#include <utility>

namespace tcpshift {

namespace {

constexpr uint64_t kMaxMs = 100ull * 24 * 3600 * 1000;
// Beyond nine digits a part would exceed kMaxMs in any unit; the bound keeps arithmetic exact.
constexpr size_t kMaxDigits = 9;

struct Unit {
    std::string_view name;
    uint64_t us;
};
// "ms" before "m", so that the longer suffix wins.
constexpr std::array<Unit, 4> kUnits{{{"ms", 1000}, {"h", 3600000000ull}, {"m", 60000000}, {"s", 1000000}}};

Error duration_error(std::string_view text, const std::string& why) {
    // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on a literal + std::string.
    std::string message = "\"";
    message.append(text);
    message.append("\" is not a duration such as 30s, 1.5s, 500ms or 1m: ");
    message.append(why);
    return config_error(std::move(message));
}

// Reads up to kMaxDigits digits at text[pos]; returns how many it read (0: none).
size_t read_digits(std::string_view text, size_t pos, uint64_t* value) {
    size_t n = 0;
    *value = 0;
    while (pos + n < text.size() && text[pos + n] >= '0' && text[pos + n] <= '9' && n <= kMaxDigits) {
        *value = *value * 10 + static_cast<uint64_t>(text[pos + n] - '0');
        ++n;
    }
    return n;
}

}  // namespace

Result<uint64_t> parse_duration_ms(std::string_view text) {
    if (text == "0") return 0;
    if (text.empty()) return fail(duration_error(text, "it is empty"));
    if (text[0] == '-' || text[0] == '+') return fail(duration_error(text, "no sign is allowed"));
    uint64_t total_us = 0;
    for (size_t pos = 0; pos < text.size();) {
        uint64_t whole = 0, fraction = 0, scale = 1;
        const size_t whole_digits = read_digits(text, pos, &whole);
        pos += whole_digits;
        size_t fraction_digits = 0;
        if (pos < text.size() && text[pos] == '.') {
            fraction_digits = read_digits(text, pos + 1, &fraction);
            pos += 1 + fraction_digits;
            for (size_t i = 0; i < fraction_digits; ++i) scale *= 10;
        }
        if (whole_digits > kMaxDigits || fraction_digits > kMaxDigits)
            return fail(duration_error(text, "a number has too many digits"));
        if (whole_digits == 0 && fraction_digits == 0) return fail(duration_error(text, "a number is missing"));
        const Unit* unit = nullptr;
        for (const auto& u : kUnits)
            if (text.substr(pos, u.name.size()) == u.name) {
                unit = &u;
                break;
            }
        if (!unit) return fail(duration_error(text, "each number needs a unit: h, m, s or ms"));
        pos += unit->name.size();
        if ((fraction * unit->us) % scale != 0) return fail(duration_error(text, "it is finer than a millisecond"));
        total_us += whole * unit->us + fraction * unit->us / scale;
        if (total_us > kMaxMs * 1000) return fail(duration_error(text, "it is longer than 100 days"));
    }
    if (total_us % 1000 != 0) return fail(duration_error(text, "it is finer than a millisecond"));
    return total_us / 1000;
}

std::string duration_str(uint64_t ms) {
    if (ms < 1000) return std::to_string(ms) + " ms";
    if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + " h";
    if (ms % 60000 == 0) return std::to_string(ms / 60000) + " min";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
    std::string text = std::to_string(ms / 1000) + "." + std::to_string(1000 + ms % 1000).substr(1);
    while (text.back() == '0') text.pop_back();
    return text + " s";
}

}  // namespace tcpshift
