#include "apply/state.h"

#include <map>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/fd.h"
#include "dataplane/pins.h"

namespace tcpshift {

using nlohmann::json;

namespace {

std::string state_file(uint64_t netns_inode) { return state_dir(netns_inode) + "/applied.json"; }

}  // namespace

StoredResource store_resource(const Resource& resource) {
    YAML::Emitter out;
    out << resource.node;
    return StoredResource{.key = resource.key(), .source = resource.where.str(), .yaml = out.c_str()};
}

void merge_resources(AppliedState& state, const std::vector<Resource>& resources) {
    std::map<std::string, size_t> index;  // key -> position in state.resources
    for (size_t i = 0; i < state.resources.size(); ++i) index.emplace(state.resources[i].key, i);
    for (const auto& r : resources) {
        StoredResource stored = store_resource(r);
        if (auto it = index.find(stored.key); it != index.end()) {
            state.resources[it->second] = std::move(stored);
        } else {
            index.emplace(stored.key, state.resources.size());
            state.resources.push_back(std::move(stored));
        }
    }
}

size_t remove_resources(AppliedState& state, const std::vector<std::string>& keys) {
    const size_t before = state.resources.size();
    std::erase_if(state.resources, [&](const StoredResource& r) {
        return std::find(keys.begin(), keys.end(), r.key) != keys.end();
    });
    return before - state.resources.size();
}

Result<std::vector<Resource>> stored_resources(const AppliedState& state) {
    std::vector<Resource> out;
    for (const auto& stored : state.resources) {
        const auto slash = stored.key.find('/');
        const auto slash2 = stored.key.find('/', slash + 1);
        const std::string ns = stored.key.substr(slash + 1, slash2 - slash - 1);
        auto parsed = parse_resources(stored.yaml, "applied " + stored.key + " (from " + stored.source + ")", ns, nullptr);
        if (!parsed) return fail(parsed.error());
        for (auto& r : *parsed) out.push_back(std::move(r));
    }
    return out;
}

Result<AppliedState> load_state(uint64_t netns_inode) {
    AppliedState state;
    std::ifstream in(state_file(netns_inode));
    if (!in) return state;
    try {
        const json j = json::parse(in);
        for (const auto& r : j.at("resources"))
            state.resources.push_back(StoredResource{.key = r.at("key"), .source = r.at("source"), .yaml = r.at("yaml")});
        state.ids.services = j.at("ids").at("services").get<std::map<std::string, uint32_t>>();
        state.ids.backends = j.at("ids").at("backends").get<std::map<std::string, uint32_t>>();
        state.serial = j.value("serial", uint64_t{0});
        for (const auto& route : j.value("local_routes", json::array())) {
            auto ep = parse_address(route.get<std::string>(), 0);
            if (!ep) throw json::other_error::create(501, "local_routes: " + ep.error().message, nullptr);
            state.local_routes.push_back(*ep);
        }
    } catch (const json::exception& e) {
        return fail(system_error(state_file(netns_inode) + ": unreadable applied state: " + e.what() +
                                 "; `tcpshift detach` resets it"));
    }
    return state;
}

Result<void> save_state(uint64_t netns_inode, const AppliedState& state) {
    json j;
    j["version"] = 1;
    j["resources"] = json::array();
    for (const auto& r : state.resources) j["resources"].push_back({{"key", r.key}, {"source", r.source}, {"yaml", r.yaml}});
    j["ids"] = {{"services", state.ids.services}, {"backends", state.ids.backends}};
    j["local_routes"] = json::array();
    for (const auto& route : state.local_routes) j["local_routes"].push_back(route.address_str());

    j["serial"] = state.serial;

    const std::string dir = state_dir(netns_inode);
    if (auto ok = make_dirs(dir, 0700); !ok) return ok;
    const std::string path = state_file(netns_inode);
    const std::string tmp = path + ".tmp";
    const std::string text = j.dump(2) + "\n";
    Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!out) return fail(system_error("open " + tmp, errno));
    for (size_t done = 0; done < text.size();) {
        const ssize_t n = ::write(out.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail(system_error("write " + tmp, errno));
        done += static_cast<size_t>(n);
    }
    if (::fsync(out.get()) != 0) return fail(system_error("fsync " + tmp, errno));
    if (::close(out.release()) != 0) return fail(system_error("close " + tmp, errno));
    if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(system_error("rename " + tmp + " to " + path, errno));
    Fd parent(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (parent) (void)::fsync(parent.get());
    return {};
}

}  // namespace tcpshift
