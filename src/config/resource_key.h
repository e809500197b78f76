// What names a resource across applies: its kind and API group, its namespace and its name.
// `apply` replaces by it, `delete` and `get` select by it, and the applied set stores it.
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace tcpshift {

struct ResourceKey {
    std::string kind;   // "VirtualService"
    std::string group;  // "networking.istio.io"; "" for the core group ("v1")
    std::string ns;
    std::string name;

    // "VirtualService.networking.istio.io", or "Service" for the core group.
    std::string kind_group() const;
    // "VirtualService.networking.istio.io/default/tcp-echo": how users and the stored set
    // name it.
    std::string str() const;
    // The inverse of str(); nothing for text that is not a key.
    static std::optional<ResourceKey> parse(std::string_view text);

    // Whether `tcpshift get KIND` / `delete KIND NAME` selects this key. KIND is the kind in
    // any case, optionally plural or with its group: virtualservice, VirtualServices,
    // gateway.networking.istio.io.
    bool matches_kind(std::string_view wanted) const;

    auto operator<=>(const ResourceKey&) const = default;
};

}  // namespace tcpshift
