#include "report/inventory.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "dataplane/attach.h"
#include "dataplane/pins.h"
#include "report/report.h"
#include "apply/state.h"

namespace tcpshift {

namespace fs = std::filesystem;

namespace {

bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// The name under /var/run/netns whose namespace has this inode; empty when none has.
std::string netns_name(uint64_t inode) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/var/run/netns", ec)) {
        struct stat st {};
        if (::stat(entry.path().c_str(), &st) == 0 && st.st_ino == inode) return entry.path().filename();
    }
    return "";
}

}  // namespace

std::string cgroup_path(uint64_t id) {
    if (id == 0) return "";
    auto root = default_cgroup2();
    if (!root) return "#" + std::to_string(id);
    struct stat st {};
    if (::stat(root->c_str(), &st) == 0 && st.st_ino == id) return *root;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(*root, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end; it.increment(ec)) {
        if (!it->is_directory(ec)) continue;
        if (::stat(it->path().c_str(), &st) == 0 && st.st_ino == id) return it->path();
    }
    return "#" + std::to_string(id);
}

Result<std::vector<AttachedNamespace>> list_attached() {
    if (auto ok = ensure_bpffs(); !ok) return fail(ok.error());
    std::vector<AttachedNamespace> all;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(kPinRoot, ec)) {
        const std::string name = entry.path().filename();
        if (!entry.is_directory() || !all_digits(name)) continue;  // e.g. a tmp- directory being renamed
        AttachedNamespace ns{.inode = std::stoull(name), .pins = entry.path()};
        ns.gone = !dataplane_alive(ns.inode);
        ns.name = ns.gone ? "" : netns_name(ns.inode);
        if (auto state = load_state(ns.inode)) ns.resources = state->resources.size();
        const CgroupAttachment cgroup = cgroup_attachment(ns.inode);
        ns.cgroup = cgroup_path(cgroup.cgroup_id);
        ns.cgroup_programs = cgroup.programs;
        all.push_back(std::move(ns));
    }
    if (ec) return fail(system_error(std::string("list ") + kPinRoot + ": " + ec.message()));
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.inode < b.inode; });
    return all;
}

nlohmann::json inventory_json(const std::vector<AttachedNamespace>& all) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& ns : all)
        list.push_back({{"netns_inode", ns.inode},
                        {"state", ns.gone ? "gone" : "attached"},
                        {"name", ns.name},
                        {"pins", ns.pins},
                        {"resources", ns.resources},
                        {"cgroup", ns.cgroup},
                        {"cgroup_programs", ns.cgroup_programs}});
    return {{"namespaces", list}};
}

namespace {

std::string programs_cell(const std::vector<std::string>& programs) {
    std::string cell;
    for (const auto& p : programs) cell += (cell.empty() ? "" : ",") + p;
    return cell.empty() ? "-" : cell;
}

}  // namespace

void print_inventory(const std::vector<AttachedNamespace>& all, std::ostream& out) {
    if (all.empty()) {
        out << "tcpshift is attached to no network namespace\n";
        return;
    }
    TextTable t;
    t.row({"NETNS", "NAME", "STATE", "RESOURCES", "PINS", "CGROUP", "CGROUP PROGRAMS"});
    size_t gone = 0;
    for (const auto& ns : all) {
        gone += ns.gone;
        t.row({std::to_string(ns.inode), ns.name.empty() ? "-" : ns.name,
               ns.gone ? "gone (namespace deleted without detach)" : "attached", std::to_string(ns.resources), ns.pins,
               ns.cgroup.empty() ? "-" : ns.cgroup, programs_cell(ns.cgroup_programs)});
    }
    t.print(out);
    if (gone) out << gone << " left behind by deleted namespaces; `tcpshift prune` removes them\n";
}

Result<std::vector<AttachedNamespace>> prune_gone() {
    auto all = list_attached();
    if (!all) return fail(all.error());
    std::vector<AttachedNamespace> removed;
    for (const auto& ns : *all) {
        if (!ns.gone) continue;
        for (const std::string& dir : {ns.pins, state_dir(ns.inode), group_pin_dir(ns.inode)})
            if (auto ok = remove_tree(dir); !ok) return fail(ok.error());
        removed.push_back(ns);
    }
    return removed;
}

}  // namespace tcpshift
