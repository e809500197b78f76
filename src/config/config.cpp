#include "config/config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <yaml-cpp/eventhandler.h>

#include "config/yaml_fields.h"

namespace tcpshift {

namespace fs = std::filesystem;

std::string Resource::group() const {
    const auto slash = api_version.find('/');
    return slash == std::string::npos ? "" : api_version.substr(0, slash);
}

ResourceKey Resource::key() const { return ResourceKey{.kind = kind, .group = group(), .ns = ns, .name = name}; }

Result<void> Diagnostics::warn(std::string message) {
    if (strict) return fail(config_error(message + " (an error under --strict)"));
    warnings.push_back(std::move(message));
    return {};
}

std::string affinity_name(Affinity affinity) { return affinity == Affinity::kSourceIp ? "source-ip" : "none"; }

std::string balance_name(Balance balance) {
    switch (balance) {
        case Balance::kRandom: return "RANDOM";
        case Balance::kRoundRobin: return "ROUND_ROBIN";
        case Balance::kLeastConn: return "LEAST_CONN";
        case Balance::kHash: break;
    }
    return "hash";
}

double WarmupPolicy::factor(uint64_t age_ms) const {
    if (duration_ms == 0 || age_ms >= duration_ms) return 1;
    const double time_factor = static_cast<double>(std::max<uint64_t>(age_ms, 1000)) / static_cast<double>(duration_ms);
    return std::min(1.0, std::max(min_percent / 100, std::pow(time_factor, 1 / aggression)));
}

bool is_config_file_name(const std::string& name) {
    if (name.starts_with("..")) return false;
    return name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json");
}

namespace {

struct AcceptedKind {
    std::string_view group;
    std::string_view kind;
    std::vector<std::string_view> versions;
};

// The kinds tcpshift reads, and the API versions it serves for each.
const AcceptedKind kAccepted[] = {
    {"tcpshift.io", "TrafficShift", {"v1alpha1"}},
    {"tcpshift.io", "TrafficRollout", {"v1alpha1"}},  // run by the agent (rollout/resource.h)
    {"networking.istio.io", "Gateway", {"v1alpha3", "v1beta1", "v1"}},
    {"networking.istio.io", "VirtualService", {"v1alpha3", "v1beta1", "v1"}},
    {"networking.istio.io", "DestinationRule", {"v1alpha3", "v1beta1", "v1"}},
    {"networking.istio.io", "ServiceEntry", {"v1alpha3", "v1beta1", "v1"}},
    {"networking.istio.io", "WorkloadEntry", {"v1alpha3", "v1beta1", "v1"}},
    {"", "Service", {"v1"}},
    {"gateway.networking.k8s.io", "Gateway", {"v1", "v1beta1", "v1alpha2"}},
    {"gateway.networking.k8s.io", "TCPRoute", {"v1alpha2", "v1alpha3"}},
};

Result<std::string> read_file(const std::string& path) {
    if (path == "-") {
        std::ostringstream out;
        out << std::cin.rdbuf();
        if (out.str().size() > kMaxConfigBytes)
            return fail(config_error("-: input is larger than " + std::to_string(kMaxConfigBytes >> 20) + " MiB"));
        return out.str();
    }
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec) return fail(config_error(path + ": cannot read: " + ec.message()));
    if (size > kMaxConfigBytes)
        return fail(config_error(path + ": file is " + std::to_string(size >> 20) + " MiB, more than the " +
                                 std::to_string(kMaxConfigBytes >> 20) + " MiB a config may be"));
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(config_error(path + ": cannot open"));
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

// The files one -f argument names: the file itself, or a directory's config files in name
// order, the order kubectl applies them in.
Result<std::vector<std::string>> expand_path(const std::string& path) {
    std::error_code ec;
    if (path != "-" && !fs::exists(path, ec)) return fail(config_error(path + ": no such file or directory"));
    if (path == "-" || !fs::is_directory(path, ec)) return std::vector<std::string>{path};
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
        if (entry.is_regular_file() && is_config_file_name(entry.path().filename().string()))
            found.push_back(entry.path().string());
    }
    if (ec) return fail(config_error(path + ": cannot list: " + ec.message()));
    std::sort(found.begin(), found.end());
    return found;
}

// Walks the YAML event stream before anything is built from it: refuses aliases (an alias
// can expand without bound, or refer to its own node) and bounds nesting and size, so
// hostile input fails fast with a line number instead of exhausting time or memory.
class ShapeGuard : public YAML::EventHandler {
   public:
    static constexpr int kMaxDepth = 64;
    static constexpr size_t kMaxNodes = 2000000;

    struct Refused {
        YAML::Mark mark;
        std::string why;
    };

    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { node(mark, anchor); }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
        throw Refused{mark, "YAML aliases (*name) are not accepted; write the value out"};
    }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string&) override {
        node(mark, anchor);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                         YAML::EmitterStyle::value) override {
        open(mark, anchor);
    }
    void OnSequenceEnd() override { --depth_; }
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                    YAML::EmitterStyle::value) override {
        open(mark, anchor);
    }
    void OnMapEnd() override { --depth_; }

   private:
    void node(const YAML::Mark& mark, YAML::anchor_t) {
        if (++nodes_ > kMaxNodes) throw Refused{mark, "more than " + std::to_string(kMaxNodes) + " YAML nodes"};
    }
    void open(const YAML::Mark& mark, YAML::anchor_t anchor) {
        node(mark, anchor);
        if (++depth_ > kMaxDepth) throw Refused{mark, "nested deeper than " + std::to_string(kMaxDepth) + " levels"};
    }
    int depth_ = 0;
    size_t nodes_ = 0;
};

Result<void> check_yaml_shape(const std::string& text, const std::string& file) {
    std::istringstream in(text);
    try {
        YAML::Parser parser(in);
        ShapeGuard guard;
        while (parser.HandleNextDocument(guard)) {
        }
    } catch (const ShapeGuard::Refused& r) {
        return fail(config_error(file + ":" + std::to_string(r.mark.line + 1) + ": " + r.why));
    } catch (const YAML::Exception& e) {
        return fail(config_error(file + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg));
    }
    return {};
}

// Kubernetes object names: a DNS-1123 subdomain.
bool valid_name(const std::string& name) {
    if (name.empty() || name.size() > 253) return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
    return std::isalnum(static_cast<unsigned char>(name.front())) && std::isalnum(static_cast<unsigned char>(name.back()));
}

// The accepted kind of `r`, or null for a kind tcpshift skips; an accepted kind in a version
// tcpshift does not serve is an error.
Result<const AcceptedKind*> accepted_kind(const Resource& r) {
    const std::string group = r.group();
    const std::string version = r.api_version.substr(r.api_version.find('/') + 1);
    const AcceptedKind* accepted = nullptr;
    for (const auto& k : kAccepted)
        if (k.group == group && k.kind == r.kind) accepted = &k;
    if (accepted == nullptr) return accepted;
    bool served = false;
    std::string versions;
    for (auto v : accepted->versions) {
        served = served || v == version;
        versions += (versions.empty() ? "" : ", ") + (group.empty() ? "" : group + "/") + std::string(v);
    }
    if (!served)
        return fail(config_error(r.where.str() + ": apiVersion: \"" + r.api_version + "\" is not served for " +
                                 r.kind + "; use " + versions));
    return accepted;
}

}  // namespace

Result<void> check_name(const std::string& name, const std::string& where, const std::string& field) {
    if (valid_name(name)) return {};
    return fail(config_error(where + ": " + field + ": \"" + name +
                             "\" is not a valid name: lowercase letters, digits, '-' and '.', starting and ending "
                             "with a letter or digit, at most 253 characters"));
}

Result<std::vector<Resource>> parse_resources(const std::string& text, const std::string& file,
                                              const std::string& default_ns, Diagnostics* diagnostics, Origin origin) {
    if (origin == Origin::kOutside)
        if (auto ok = check_yaml_shape(text, file); !ok) return fail(ok.error());
    std::vector<YAML::Node> docs;
    try {
        docs = YAML::LoadAll(text);
    } catch (const YAML::Exception& e) {
        return fail(config_error(file + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg));
    }
    std::vector<Resource> out;
    for (const auto& doc : docs) {
        if (doc.IsNull()) continue;
        const SourceRef where{file, line_of(doc)};
        if (!doc.IsMap()) return fail(config_error(where.str() + ": a document must be a mapping with apiVersion and kind"));
        Resource r{.where = where, .node = doc};
        auto api = optional_string(doc, "apiVersion", where.file, "apiVersion");
        if (!api) return fail(api.error());
        auto kind = optional_string(doc, "kind", where.file, "kind");
        if (!kind) return fail(kind.error());
        if (!*kind || !*api)
            return fail(config_error(where.str() + ": " + (*kind ? "apiVersion" : "kind") +
                                     ": missing; every document needs apiVersion and kind"));
        r.api_version = **api;
        r.kind = **kind;
        const auto& meta = doc["metadata"];
        if (!meta || !meta.IsMap()) return fail(config_error(where.str() + ": metadata: missing; it needs a name"));
        auto name = optional_string(meta, "name", file, "metadata.name");
        if (!name) return fail(name.error());
        if (!*name || (*name)->empty()) return fail(config_error(where.str() + ": metadata.name: missing"));
        r.name = **name;
        if (auto ok = check_name(r.name, at(meta["name"], file), "metadata.name"); !ok) return fail(ok.error());
        auto ns = optional_string(meta, "namespace", file, "metadata.namespace");
        if (!ns) return fail(ns.error());
        r.ns = *ns ? **ns : default_ns;
        if (auto ok = check_name(r.ns, at(meta, file), "metadata.namespace"); !ok) return fail(ok.error());

        auto accepted = accepted_kind(r);
        if (!accepted) return fail(accepted.error());
        if (*accepted == nullptr) {
            if (diagnostics)
                diagnostics->notes.push_back(where.str() + ": skipped " + r.kind + " \"" + r.name + "\" (" +
                                             r.api_version + "): tcpshift does not handle this kind");
            continue;
        }
        out.push_back(std::move(r));
    }
    return out;
}

namespace {

std::string described(const Resource& r) { return r.kind + " \"" + r.name + "\" in namespace " + r.ns; }

// Within one file nothing orders two definitions of a resource but their lines, and the first
// would be dead text that `explain` still cites: most likely a copy left behind, so refused.
Result<void> check_defined_once(const std::vector<Resource>& resources) {
    std::map<ResourceKey, SourceRef> seen;  // where this file defines each
    for (const auto& r : resources)
        if (auto [it, fresh] = seen.emplace(r.key(), r.where); !fresh)
            return fail(config_error(r.where.str() + ": " + described(r) +
                                     " is defined twice in this file; the other is at " + it->second.str() +
                                     " (only a later file or -f may replace it)"));
    return {};
}

// The resources of several files, each replacing an earlier one of its key in place, as
// kubectl apply applies files in order and the last apply of an object wins.
class LoadedResources {
   public:
    void add(Resource r, size_t argument, Diagnostics* diagnostics) {
        const auto [it, fresh] = index_.emplace(r.key(), Slot{.position = all_.size(), .argument = argument});
        if (fresh) {
            all_.push_back(std::move(r));
            return;
        }
        Resource& earlier = all_[it->second.position];
        // The same file named twice replaces each of its resources by itself: nothing to say.
        if (diagnostics && earlier.where.str() != r.where.str()) {
            const std::string why = it->second.argument == argument
                                        ? "a directory's files apply in name order, the later wins"
                                        : "a later -f wins";
            diagnostics->notes.push_back(r.where.str() + ": " + described(r) + " replaces the one at " +
                                         earlier.where.str() + " (" + why + ", as with kubectl apply)");
        }
        it->second.argument = argument;
        earlier = std::move(r);
    }
    std::vector<Resource> take() { return std::move(all_); }

   private:
    struct Slot {
        size_t position;  // in all_
        size_t argument;  // the -f argument that defined it last
    };
    std::vector<Resource> all_;
    std::map<ResourceKey, Slot> index_;
};

}  // namespace

Result<std::vector<Resource>> load_resources(const std::vector<std::string>& paths, const std::string& default_ns,
                                             Diagnostics* diagnostics) {
    LoadedResources loaded;
    for (size_t argument = 0; argument < paths.size(); ++argument) {
        auto files = expand_path(paths[argument]);
        if (!files) return fail(files.error());
        for (const auto& file : *files) {
            auto text = read_file(file);
            if (!text) return fail(text.error());
            auto resources = parse_resources(*text, file, default_ns, diagnostics);
            if (!resources) return fail(resources.error());
            if (auto ok = check_defined_once(*resources); !ok) return fail(ok.error());
            for (auto& r : *resources) loaded.add(std::move(r), argument, diagnostics);
        }
    }
    return loaded.take();
}

}  // namespace tcpshift
