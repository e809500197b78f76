// Every network namespace tcpshift is attached to on this host, read from the pin root, and
// the removal of what namespaces that are gone left behind (`ip netns del` without detach).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "base/error.h"

namespace tcpshift {

struct AttachedNamespace {
    uint64_t inode = 0;
    bool gone = false;          // its sk_lookup link is attached to no live namespace
    std::string name;           // the name under /var/run/netns with that inode, if any
    std::string pins;           // its pin directory
    size_t resources = 0;       // applied resources, as its applied.json says
    std::string cgroup;         // where its cgroup programs are attached ("#ID" when not found)
    std::vector<std::string> cgroup_programs;  // sock_ops, connect4/6, getpeername4/6
};

// The path of the cgroup2 directory with this id (its inode); "#ID" when none is found.
std::string cgroup_path(uint64_t id);

// Every namespace directory under the pin root, by inode.
Result<std::vector<AttachedNamespace>> list_attached();

nlohmann::json inventory_json(const std::vector<AttachedNamespace>& all);
void print_inventory(const std::vector<AttachedNamespace>& all, std::ostream& out);

// Removes the pins (and with them the sock_ops link), the stored state and the group pins of
// every namespace that is gone; returns those it removed. The caller holds the PinLock.
Result<std::vector<AttachedNamespace>> prune_gone();

}  // namespace tcpshift
