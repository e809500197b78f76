// Finding a backend in the JSON of `tcpshift status --json` and `tcpshift stats --json`.
#pragma once

#include <nlohmann/json.hpp>
#include <cstdint>
#include <map>
#include <string>

namespace tcpshift::testing {

// The entry of the backend at `address` under any service's subsets; nullptr when none.
inline const nlohmann::json* backend_of(const nlohmann::json& report, const std::string& address) {
    for (const auto& svc : report["services"])
        for (const auto& subset : svc["subsets"])
            for (const auto& b : subset["backends"])
                if (b["address"] == address) return &b;
    return nullptr;
}

// Subset -> weight of every service in `status --json`.
inline std::map<std::string, uint32_t> applied_weights(const nlohmann::json& status) {
    std::map<std::string, uint32_t> out;
    for (const auto& svc : status["services"])
        for (const auto& subset : svc["subsets"]) out[subset["name"]] = subset["weight"];
    return out;
}

}  // namespace tcpshift::testing
