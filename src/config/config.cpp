#include "config/config.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <yaml-cpp/eventhandler.h>

#include "config/mesh/mesh.h"
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

}  // namespace

Result<void> check_name(const std::string& name, const std::string& where, const std::string& field) {
    if (valid_name(name)) return {};
    return fail(config_error(where + ": " + field + ": \"" + name +
                             "\" is not a valid name: lowercase letters, digits, '-' and '.', starting and ending "
                             "with a letter or digit, at most 253 characters"));
}

Result<std::vector<Resource>> parse_resources(const std::string& text, const std::string& file,
                                              const std::string& default_ns, Diagnostics* diagnostics) {
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

        const std::string group = r.group();
        const std::string version = r.api_version.substr(r.api_version.find('/') + 1);
        const AcceptedKind* accepted = nullptr;
        for (const auto& k : kAccepted)
            if (k.group == group && k.kind == r.kind) accepted = &k;
        if (accepted == nullptr) {
            if (diagnostics)
                diagnostics->notes.push_back(where.str() + ": skipped " + r.kind + " \"" + r.name + "\" (" +
                                             r.api_version + "): tcpshift does not handle this kind");
            continue;
        }
        bool served = false;
        std::string versions;
        for (auto v : accepted->versions) {
            served = served || v == version;
            versions += (versions.empty() ? "" : ", ") + (group.empty() ? "" : group + "/") + std::string(v);
        }
        if (!served)
            return fail(config_error(where.str() + ": apiVersion: \"" + r.api_version + "\" is not served for " +
                                     r.kind + "; use " + versions));
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

namespace {

Result<ServiceSpec> parse_traffic_shift(const Resource& r) {
    const std::string& file = r.where.file;
    const YAML::Node& doc = r.node;
    if (auto ok = check_fields(doc, {"apiVersion", "kind", "metadata", "spec"}, file, ""); !ok) return fail(ok.error());
    if (auto ok = check_fields(doc["metadata"], {"name", "namespace", "labels", "annotations"}, file, "metadata."); !ok)
        return fail(ok.error());
    ServiceSpec svc{.name = r.name, .where = r.where, .origin = r.key()};
    const YAML::Node spec = doc["spec"];
    if (!spec || !spec.IsMap()) return fail(config_error(r.where.str() + ": spec: missing or not a mapping"));
    if (auto ok = check_fields(spec, {"listen", "affinity", "takeover", "subsets"}, file, "spec."); !ok)
        return fail(ok.error());

    const YAML::Node listen = spec["listen"];
    if (!listen || !listen.IsSequence() || listen.size() == 0)
        return fail(config_error(at(spec, file) + ": spec.listen: needs at least one ADDRESS:PORT"));
    for (size_t i = 0; i < listen.size(); ++i) {
        const std::string field = "spec.listen[" + std::to_string(i) + "]";
        auto text = scalar_string(listen[i], file, field);
        if (!text) return fail(text.error());
        auto ep = parse_endpoint(*text);
        if (!ep) return fail(config_error(at(listen[i], file) + ": " + field + ": " + ep.error().message));
        svc.listen.push_back(*ep);
        svc.listen_where.push_back({file, line_of(listen[i])});
    }

    if (const YAML::Node aff = spec["affinity"]) {
        auto text = scalar_string(aff, file, "spec.affinity");
        if (!text) return fail(text.error());
        svc.affinity_where = {file, line_of(aff)};
        if (*text == "source-ip") {
            svc.affinity = Affinity::kSourceIp;
        } else if (*text != "none") {
            return fail(config_error(at(aff, file) + ": spec.affinity: \"" + *text + "\" is not none or source-ip"));
        }
    }
    if (const YAML::Node takeover = spec["takeover"]) {
        auto value = scalar_bool(takeover, file, "spec.takeover");
        if (!value) return fail(value.error());
        svc.takeover = *value;
    }

    const YAML::Node subsets = spec["subsets"];
    if (!subsets || !subsets.IsSequence() || subsets.size() == 0)
        return fail(config_error(at(spec, file) + ": spec.subsets: needs at least one subset"));
    for (size_t i = 0; i < subsets.size(); ++i) {
        const YAML::Node s = subsets[i];
        const std::string field = "spec.subsets[" + std::to_string(i) + "]";
        if (!s.IsMap()) return fail(config_error(at(s, file) + ": " + field + ": must be a mapping"));
        if (auto ok = check_fields(s, {"name", "weight", "backends"}, file, field + "."); !ok) return fail(ok.error());
        SubsetSpec subset{.where = {file, line_of(s)},
                          .weight_path = {"spec", "subsets", std::to_string(i), "weight"}};
        auto name = optional_string(s, "name", file, field + ".name");
        if (!name) return fail(name.error());
        if (!*name || (*name)->empty()) return fail(config_error(at(s, file) + ": " + field + ".name: missing"));
        subset.name = **name;
        if (auto ok = check_name(subset.name, at(s, file), field + ".name"); !ok) return fail(ok.error());
        if (const YAML::Node w = s["weight"]) {
            auto weight = scalar_weight(w, file, field + ".weight");
            if (!weight) return fail(weight.error());
            subset.weight = *weight;
            subset.weight_where = {file, line_of(w)};
        } else if (subsets.size() == 1) {
            subset.weight = 100;  // a lone destination takes all, as in Istio
            subset.weight_where = subset.where;
        } else {
            return fail(config_error(at(s, file) + ": " + field +
                                     ".weight: missing; every subset needs a weight when there are several"));
        }
        const YAML::Node backends = s["backends"];
        if (!backends || !backends.IsSequence() || backends.size() == 0)
            return fail(config_error(at(s, file) + ": " + field + ".backends: needs at least one ADDRESS:PORT"));
        for (size_t j = 0; j < backends.size(); ++j) {
            const std::string bfield = field + ".backends[" + std::to_string(j) + "]";
            auto text = scalar_string(backends[j], file, bfield);
            if (!text) return fail(text.error());
            auto ep = parse_endpoint(*text);
            if (!ep) return fail(config_error(at(backends[j], file) + ": " + bfield + ": " + ep.error().message));
            if (ep->is_wildcard())
                return fail(config_error(at(backends[j], file) + ": " + bfield + ": \"" + *text +
                                         "\": a backend needs a concrete address, such as 127.0.0.1"));
            subset.backends.push_back(*ep);
            subset.backend_where.push_back({file, line_of(backends[j])});
        }
        svc.subsets.push_back(std::move(subset));
    }
    return svc;
}

// A backend as a refusal names it: its service and where it was configured.
struct BackendPlace {
    const ServiceSpec* service = nullptr;
    Endpoint address;
    SourceRef where;
};

// Why a frontend may not cover `backend`, and how to resolve it. Only a TrafficShift can
// say takeover; a route of Istio or the Gateway API has no such field.
std::string covered_backend_error(const ServiceSpec& svc, size_t frontend, const BackendPlace& backend) {
    const SourceRef& where = frontend < svc.listen_where.size() ? svc.listen_where[frontend] : svc.where;
    const bool own = backend.service == &svc;
    const std::string whose =
        own ? "its own backend " + backend.address.str()
            : "backend " + backend.address.str() + " of service \"" + backend.service->name + "\"";
    const std::string fix =
        svc.origin.kind == "TrafficShift"
            ? "move one of them to another port, or set spec.takeover: true to steer them anyway"
            : "move one of them to another port, or the gateway to another address (Istio: the server's bind; "
              "Gateway API: spec.addresses); only a TrafficShift can take a port over, with spec.takeover: true";
    return where.str() + ": service \"" + svc.name + "\": frontend " + svc.listen[frontend].str() + " covers " + whose +
           " (" + backend.where.str() + "): clients that connect to that backend would be steered " +
           (own ? "by weight too" : "to \"" + svc.name + "\" instead") + "; " + fix;
}

// sk_lookup gives a frontend every new connection to its address and port (the exact
// address, then the wildcard of the connection's family), so a frontend that covers a backend
// takes the clients that connect to that backend directly: its port is taken over. A frontend
// on its own service's backend would steer that backend's direct clients by weight, which is
// a takeover too.
Result<void> check_no_frontend_covers_a_backend(const std::vector<ServiceSpec>& services) {
    std::map<Endpoint, BackendPlace> by_address;
    std::map<Endpoint, BackendPlace> by_port;  // keyed by the wildcard of the backend's family and port
    for (const auto& svc : services)
        for (const auto& subset : svc.subsets)
            for (size_t k = 0; k < subset.backends.size(); ++k) {
                const Endpoint& b = subset.backends[k];
                const SourceRef& where = k < subset.backend_where.size() ? subset.backend_where[k] : subset.where;
                const BackendPlace place{.service = &svc, .address = b, .where = where};
                by_address.emplace(b, place);
                by_port.emplace(Endpoint{.family = b.family, .port = b.port}, place);
            }
    for (const auto& svc : services) {
        if (svc.takeover) continue;
        for (size_t i = 0; i < svc.listen.size(); ++i) {
            const auto& covered = svc.listen[i].is_wildcard() ? by_port : by_address;
            if (auto it = covered.find(svc.listen[i]); it != covered.end())
                return fail(config_error(covered_backend_error(svc, i, it->second)));
        }
    }
    return {};
}

}  // namespace

Result<std::vector<ServiceSpec>> resolve_services(const std::vector<Resource>& resources, Diagnostics* diagnostics) {
    Diagnostics local;
    Diagnostics& diag = diagnostics ? *diagnostics : local;
    std::vector<ServiceSpec> services;
    for (const auto& r : resources) {
        if (r.kind != "TrafficShift") continue;
        auto svc = parse_traffic_shift(r);
        if (!svc) return fail(svc.error());
        services.push_back(std::move(*svc));
    }
    auto mesh = mesh::resolve_mesh_services(resources, diag);
    if (!mesh) return fail(mesh.error());
    for (auto& svc : *mesh) services.push_back(std::move(svc));
    if (auto ok = validate_services(services); !ok) return fail(ok.error());
    return services;
}

Result<void> validate_services(const std::vector<ServiceSpec>& services) {
    std::map<std::string, const ServiceSpec*> names;
    std::map<Endpoint, const ServiceSpec*> frontends;
    for (const auto& svc : services) {
        if (auto [it, fresh] = names.emplace(svc.name, &svc); !fresh)
            return fail(config_error(svc.where.str() + ": metadata.name: service \"" + svc.name +
                                     "\" is defined twice; the other is at " + it->second->where.str()));
        for (const auto& ep : svc.listen) {
            if (auto [it, fresh] = frontends.emplace(ep, &svc); !fresh)
                return fail(config_error(svc.where.str() + ": spec.listen: " + ep.str() + " is claimed by service \"" +
                                         svc.name + "\" and by \"" + it->second->name + "\" (" +
                                         it->second->where.str() + "); a frontend belongs to one service"));
        }
        std::set<std::string> subset_names;
        std::set<Endpoint> backends;
        uint64_t total = 0;
        for (const auto& subset : svc.subsets) {
            if (!subset_names.insert(subset.name).second)
                return fail(config_error(subset.where.str() + ": subset \"" + subset.name + "\" of service \"" +
                                         svc.name + "\" is defined twice"));
            for (const auto& b : subset.backends)
                if (!backends.insert(b).second)
                    return fail(config_error(subset.where.str() + ": backend " + b.str() + " appears twice in service \"" +
                                             svc.name + "\""));
            total += subset.weight;
        }
        if (total == 0)
            return fail(config_error(svc.where.str() + ": service \"" + svc.name +
                                     "\": every subset has weight 0, so no connection could be served; give one a "
                                     "weight above 0"));
    }
    return check_no_frontend_covers_a_backend(services);
}

}  // namespace tcpshift
