#include "apply/state.h"

#include "base/files.h"

#include <map>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "base/fd.h"
#include "dataplane/pins.h"

namespace tcpshift {

using nlohmann::json;

std::string state_file(uint64_t netns_inode) { return state_dir(netns_inode) + "/" + kStateFileName; }

namespace {

StoredResource store_resource(const Resource& resource, const std::string& source) {
    YAML::Emitter out;
    out << resource.node;
    return StoredResource{.key = resource.key(), .source = source.empty() ? resource.where.str() : source,
                          .yaml = out.c_str()};
}

Result<Resource> parse_stored(const StoredResource& stored) {
    auto parsed = parse_resources(stored.yaml, "applied " + stored.key.str() + " (from " + stored.source + ")",
                                  stored.key.ns, nullptr, Origin::kTrusted);
    if (!parsed) return fail(parsed.error());
    if (parsed->size() != 1)
        return fail(system_error("applied " + stored.key.str() + ": the stored document holds " +
                                 std::to_string(parsed->size()) + " resources; `tcpshift detach` resets it"));
    return std::move(parsed->front());
}

}  // namespace

Result<std::vector<Resource>> stored_resources(const AppliedState& state) {
    std::vector<Resource> out;
    for (const auto& stored : state.resources) {
        auto r = parse_stored(stored);
        if (!r) return fail(r.error());
        out.push_back(std::move(*r));
    }
    return out;
}

Result<NextSet> with_resources(const ParsedSet& applied, const std::vector<Resource>& incoming,
                               const std::string& source) {
    if (applied.resources.size() != applied.state.resources.size()) return with_resources(applied.state, incoming, source);
    NextSet next{.state = applied.state};
    // Which resource each place holds. Resources are copied into place, never assigned: a YAML
    // node assigned to writes through to the tree it shares with the applied set.
    std::vector<const Resource*> slots;
    for (const auto& r : applied.resources) slots.push_back(&r);
    std::map<ResourceKey, size_t> position;
    for (size_t i = 0; i < next.state.resources.size(); ++i) position.emplace(next.state.resources[i].key, i);
    // A document stored as it comes, from wherever, changes nothing: the set stays as it is,
    // and nothing is written.
    next.changed = false;
    for (const auto& r : incoming) {
        const auto [it, fresh] = position.emplace(r.key(), next.state.resources.size());
        StoredResource stored = store_resource(r, source);
        if (fresh) {
            next.state.resources.push_back(std::move(stored));
            slots.push_back(&r);
            next.changed = true;
        } else if (stored.yaml == next.state.resources[it->second].yaml) {
            next.unchanged.push_back(r.key());
        } else {
            next.state.resources[it->second] = std::move(stored);
            slots[it->second] = &r;
            next.changed = true;
        }
    }
    next.resources.reserve(slots.size());
    for (const Resource* r : slots) next.resources.push_back(*r);
    return next;
}

Result<NextSet> without_resources(const ParsedSet& applied, const std::vector<ResourceKey>& keys) {
    if (applied.resources.size() != applied.state.resources.size()) return without_resources(applied.state, keys);
    NextSet next;
    next.state = applied.state;
    next.state.resources.clear();
    for (size_t i = 0; i < applied.state.resources.size(); ++i) {
        if (std::find(keys.begin(), keys.end(), applied.state.resources[i].key) != keys.end()) continue;
        next.state.resources.push_back(applied.state.resources[i]);
        next.resources.push_back(applied.resources[i]);
    }
    next.changed = next.state.resources.size() != applied.state.resources.size();
    return next;
}

Result<NextSet> with_resources(const AppliedState& applied, const std::vector<Resource>& incoming,
                               const std::string& source) {
    auto parsed = stored_resources(applied);
    if (!parsed) return fail(parsed.error());
    return with_resources(ParsedSet{applied, *parsed}, incoming, source);
}

Result<NextSet> without_resources(const AppliedState& applied, const std::vector<ResourceKey>& keys) {
    auto parsed = stored_resources(applied);
    if (!parsed) return fail(parsed.error());
    return without_resources(ParsedSet{applied, *parsed}, keys);
}

NextSet only_resources(const AppliedState& applied, std::vector<Resource> resources) {
    NextSet next{.state = AppliedState{.ids = applied.ids, .local_routes = applied.local_routes,
                                       .serial = applied.serial}};
    for (const auto& r : resources) next.state.resources.push_back(store_resource(r, ""));
    next.resources = std::move(resources);
    return next;
}

Result<AppliedState> load_state(uint64_t netns_inode) { return load_state_at(state_dir(netns_inode)); }

namespace {

// Takes the top-level "serial" of a JSON document as the parser passes it, building nothing.
class SerialReader : public nlohmann::json_sax<json> {
   public:
    uint64_t serial = 0;

    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t value) override {
        if (at_serial()) serial = static_cast<uint64_t>(value);
        return true;
    }
    bool number_unsigned(number_unsigned_t value) override {
        if (at_serial()) serial = value;
        return true;
    }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override { return enter(); }
    bool end_object() override { return leave(); }
    bool start_array(std::size_t) override { return enter(); }
    bool end_array() override { return leave(); }
    bool key(string_t& name) override {
        key_is_serial_ = depth_ == 1 && name == "serial";
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
        error = e.what();
        return false;
    }
    std::string error;

   private:
    bool at_serial() { return std::exchange(key_is_serial_, false) && depth_ == 1; }
    bool enter() {
        key_is_serial_ = false;
        ++depth_;
        return true;
    }
    bool leave() {
        --depth_;
        return true;
    }
    int depth_ = 0;
    bool key_is_serial_ = false;
};

}  // namespace

Result<uint64_t> load_state_serial(uint64_t netns_inode) {
    const std::string path = state_file(netns_inode);
    std::ifstream in(path);
    if (!in) return 0;
    SerialReader reader;
    if (!json::sax_parse(in, &reader))
        return fail(system_error(path + ": unreadable applied state: " + reader.error + "; `tcpshift detach` resets it"));
    return reader.serial;
}

Result<void> save_state(uint64_t netns_inode, const AppliedState& state) {
    return save_state_at(state_dir(netns_inode), state);
}

Result<AppliedState> load_state_at(const std::string& dir) {
    const std::string path = dir + "/" + kStateFileName;
    AppliedState state;
    std::ifstream in(path);
    if (!in) return state;
    try {
        const json j = json::parse(in);
        for (const auto& r : j.at("resources")) {
            const auto key = ResourceKey::parse(r.at("key").get<std::string>());
            if (!key) throw json::other_error::create(501, "resources: not a resource key: " + r.at("key").dump(), nullptr);
            state.resources.push_back(StoredResource{.key = *key, .source = r.at("source"), .yaml = r.at("yaml")});
        }
        state.ids.services = j.at("ids").at("services").get<std::map<std::string, uint32_t>>();
        state.ids.backends = j.at("ids").at("backends").get<std::map<std::string, uint32_t>>();
        state.serial = j.value("serial", uint64_t{0});
        for (const auto& route : j.value("local_routes", json::array())) {
            auto ep = parse_address(route.get<std::string>(), 0);
            if (!ep) throw json::other_error::create(501, "local_routes: " + ep.error().message, nullptr);
            state.local_routes.push_back(*ep);
        }
    } catch (const json::exception& e) {
        return fail(system_error(path + ": unreadable applied state: " + e.what() +
                                 "; `tcpshift detach` resets it"));
    }
    return state;
}

Result<void> save_state_at(const std::string& dir, const AppliedState& state) {
    json j;
    j["version"] = 1;
    j["resources"] = json::array();
    for (const auto& r : state.resources) j["resources"].push_back({{"key", r.key.str()}, {"source", r.source}, {"yaml", r.yaml}});
    j["ids"] = {{"services", state.ids.services}, {"backends", state.ids.backends}};
    j["local_routes"] = json::array();
    for (const auto& route : state.local_routes) j["local_routes"].push_back(route.address_str());

    j["serial"] = state.serial;

    if (auto ok = make_dirs(dir, 0700); !ok) return ok;
    return replace_file(dir + "/" + kStateFileName, j.dump(2) + "\n", 0600);
}

}  // namespace tcpshift
