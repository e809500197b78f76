// What every libFuzzer target checks, whatever the input: a refusal is a configuration
// error with a message, and an accepted service is one the data plane can hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "base/error.h"

namespace tcpshift::fuzz {

// A broken invariant is a crash, so libFuzzer keeps the input that caused it.
#define TCPSHIFT_FUZZ_CHECK(cond) \
    do {                          \
        if (!(cond)) __builtin_trap(); \
    } while (0)

inline std::string input_text(const uint8_t* data, size_t size) {
    return std::string(reinterpret_cast<const char*>(data), size);
}

// Bad input must be refused as configuration (exit 2), with a message. A message about the
// input names the file it came from; one about the set's size (too many services) need not.
enum class Names { kFile, kAnything };
inline void check_refusal(const Error& error, Names names = Names::kFile) {
    TCPSHIFT_FUZZ_CHECK(error.kind == ErrorKind::kConfig);
    TCPSHIFT_FUZZ_CHECK(!error.message.empty());
    if (names == Names::kFile) TCPSHIFT_FUZZ_CHECK(error.message.starts_with("fuzz.yaml"));
}

// The value of a step that accepted the input, or nothing once its refusal is checked.
template <typename T>
std::optional<T> accepted(Result<T> result, Names names = Names::kFile) {
    if (result) return std::move(*result);
    check_refusal(result.error(), names);
    return std::nullopt;
}

// The input as a user's file would be read.
inline std::optional<std::vector<Resource>> parse_input(const uint8_t* data, size_t size, Diagnostics& diag) {
    return accepted(parse_resources(input_text(data, size), "fuzz.yaml", "default", &diag));
}

inline void check_services(const std::vector<ServiceSpec>& services) {
    for (const auto& svc : services) {
        TCPSHIFT_FUZZ_CHECK(check_name(svc.name, "fuzz", "name").has_value());
        TCPSHIFT_FUZZ_CHECK(!svc.listen.empty());
        for (const auto& ep : svc.listen) TCPSHIFT_FUZZ_CHECK(ep.port != 0);
        TCPSHIFT_FUZZ_CHECK(!svc.subsets.empty());
        for (const auto& subset : svc.subsets) {
            TCPSHIFT_FUZZ_CHECK(!subset.name.empty());
            for (const auto& backend : subset.backends) TCPSHIFT_FUZZ_CHECK(backend.port != 0);
        }
    }
}

}  // namespace tcpshift::fuzz
