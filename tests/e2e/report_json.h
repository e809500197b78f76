// Finding a backend in the JSON of `tcpshift status --json` and `tcpshift stats --json`.
#pragma once

#include <nlohmann/json.hpp>
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

}  // namespace tcpshift::testing
