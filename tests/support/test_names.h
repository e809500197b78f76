// Readable names for table-driven test cases: "bad address" -> "bad_address".
#pragma once

#include <cctype>
#include <string>

namespace tcpshift {

inline std::string test_case_name(const std::string& desc) {
    std::string name;
    for (char c : desc) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return name;
}

}  // namespace tcpshift
