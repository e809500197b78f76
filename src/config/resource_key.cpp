#include "config/resource_key.h"

#include <cctype>

namespace tcpshift {

namespace {

std::string lowered(std::string_view text) {
    std::string out;
    for (char c : text) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

std::string ResourceKey::kind_group() const { return group.empty() ? kind : kind + "." + group; }

std::string ResourceKey::str() const { return kind_group() + "/" + ns + "/" + name; }

std::optional<ResourceKey> ResourceKey::parse(std::string_view text) {
    const auto first = text.find('/');
    if (first == std::string_view::npos) return std::nullopt;
    const auto second = text.find('/', first + 1);
    if (second == std::string_view::npos || text.find('/', second + 1) != std::string_view::npos)
        return std::nullopt;
    const std::string_view kind_group = text.substr(0, first);
    const auto dot = kind_group.find('.');  // kinds have no dots; groups do
    ResourceKey key{.kind = std::string(kind_group.substr(0, dot)),
                    .group = dot == std::string_view::npos ? "" : std::string(kind_group.substr(dot + 1)),
                    .ns = std::string(text.substr(first + 1, second - first - 1)),
                    .name = std::string(text.substr(second + 1))};
    if (key.kind.empty() || key.ns.empty() || key.name.empty()) return std::nullopt;
    return key;
}

bool ResourceKey::matches_kind(std::string_view wanted) const {
    const std::string want = lowered(wanted);
    const std::string kind_lower = lowered(kind);
    const std::string group_suffix = group.empty() ? "" : "." + lowered(group);
    return want == kind_lower || want == kind_lower + "s" || want == kind_lower + group_suffix ||
           want == kind_lower + "s" + group_suffix;
}

}  // namespace tcpshift
