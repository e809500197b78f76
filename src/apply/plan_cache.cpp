#include "apply/plan_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <concepts>
#include <cstring>
#include <map>
#include <string_view>
#include <type_traits>

#include "base/fd.h"
#include "base/files.h"
#include "dataplane/pins.h"

namespace tcpshift {

namespace {

// Raised when the plan or a policy gains a field: give it a place below (in both directions),
// then raise kFormat so that caches written before are compiled again.
static_assert(sizeof(PlanService) == 1032, "PlanService changed: keep it in the plan cache, then raise kFormat");
static_assert(sizeof(PlanBackend) == 88, "PlanBackend changed: keep it in the plan cache, then raise kFormat");
static_assert(sizeof(PlanSubset) == 176, "PlanSubset changed: keep it in the plan cache, then raise kFormat");
static_assert(sizeof(FamilyTable) == 104, "FamilyTable changed: keep it in the plan cache, then raise kFormat");
static_assert(sizeof(OutlierPolicy) == 64, "OutlierPolicy changed: keep it in the plan cache, then raise kFormat");
static_assert(sizeof(BalancePolicy) == 112, "BalancePolicy changed: keep it in the plan cache, then raise kFormat");
static_assert(sizeof(KeepalivePolicy) == 56, "KeepalivePolicy changed: keep it in the plan cache, then raise kFormat");
static_assert(sizeof(ConnectionCap) == 48, "ConnectionCap changed: keep it in the plan cache, then raise kFormat");
static_assert(sizeof(LifetimePolicy) == 136, "LifetimePolicy changed: keep it in the plan cache, then raise kFormat");
static_assert(sizeof(RebalancePolicy) == 56, "RebalancePolicy changed: keep it in the plan cache, then raise kFormat");
constexpr uint32_t kMagic = 0x70737374;  // "tssp"
constexpr uint32_t kFormat = 1;
// About 600 bytes a service: a file larger than this is not one tcpshift wrote.
constexpr off_t kMaxFileBytes = off_t{1} << 30;

// The file: magic, format, serial, the strings (each once: the same file name recurs in every
// place of a service), then the plan, whose strings are indexes into them. One function per
// type lists its fields for both directions, so that what is written is what is read.
struct Writer {
    static constexpr bool kReading = false;
    std::string body;
    std::map<std::string, uint32_t, std::less<>> strings;
    std::vector<const std::string*> order;

    template <typename T>
    void scalar(const T& v) {
        body.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    void string(const std::string& text) {
        const auto [it, fresh] = strings.emplace(text, static_cast<uint32_t>(strings.size()));
        if (fresh) order.push_back(&it->first);
        scalar(it->second);
    }
    void count(size_t n) { scalar(static_cast<uint32_t>(n)); }
};

struct Damaged {};  // the file ends early or holds what no writer wrote

struct Reader {
    static constexpr bool kReading = true;
    std::string_view rest;
    std::vector<std::string> strings;

    template <typename T>
    void scalar(T& v) {
        if (rest.size() < sizeof v) throw Damaged{};
        std::memcpy(&v, rest.data(), sizeof v);
        rest.remove_prefix(sizeof v);
    }
    void string(std::string& text) {
        uint32_t index = 0;
        scalar(index);
        if (index >= strings.size()) throw Damaged{};
        text = strings[index];
    }
    // How many items follow; each takes at least a byte, so more than the rest is damage.
    size_t count() {
        uint32_t n = 0;
        scalar(n);
        if (n > rest.size()) throw Damaged{};
        return n;
    }
};

template <typename S, typename T>
concept Is = std::same_as<std::remove_const_t<S>, T>;
template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};
template <typename T>
struct IsArray : std::false_type {};
template <typename T, size_t N>
struct IsArray<std::array<T, N>> : std::true_type {};

template <typename IO, typename T>
    requires std::is_arithmetic_v<std::remove_const_t<T>>
void visit(IO& io, T& v) {
    if constexpr (IO::kReading && std::is_same_v<T, bool>) {
        uint8_t raw = 0;  // a byte that is neither 0 nor 1 is no bool
        io.scalar(raw);
        if (raw > 1) throw Damaged{};
        v = raw == 1;
    } else {
        io.scalar(v);
    }
}
template <typename IO, Is<std::string> S>
void visit(IO& io, S& s) {
    io.string(s);
}
template <typename IO, typename E>
    requires std::is_enum_v<std::remove_const_t<E>>
void visit(IO& io, E& e) {
    using U = std::underlying_type_t<std::remove_const_t<E>>;
    if constexpr (IO::kReading) {
        U raw{};
        io.scalar(raw);
        e = static_cast<E>(raw);
    } else {
        io.scalar(static_cast<U>(e));
    }
}
template <typename IO, typename V>
    requires IsVector<std::remove_const_t<V>>::value
void visit(IO& io, V& items) {
    if constexpr (IO::kReading) {
        items.resize(io.count());
    } else {
        io.count(items.size());
    }
    for (auto& item : items) visit(io, item);
}
template <typename IO, typename A>
    requires IsArray<std::remove_const_t<A>>::value
void visit(IO& io, A& items) {
    for (auto& item : items) visit(io, item);
}
template <typename IO, Is<std::map<std::string, uint32_t>> M>
void visit(IO& io, M& ids) {
    if constexpr (IO::kReading) {
        const size_t n = io.count();
        ids.clear();
        for (size_t i = 0; i < n; ++i) {
            std::string name;
            uint32_t id = 0;
            visit(io, name);
            visit(io, id);
            ids.emplace(std::move(name), id);
        }
    } else {
        io.count(ids.size());
        for (const auto& [name, id] : ids) {
            visit(io, name);
            visit(io, id);
        }
    }
}

// Each field in turn, in the order written.
template <typename IO, typename... Fields>
void visit_all(IO& io, Fields&... fields) {
    (visit(io, fields), ...);
}

template <typename IO, Is<SourceRef> S>
void visit(IO& io, S& r) {
    visit_all(io, r.file, r.line);
}
template <typename IO, Is<Endpoint> S>
void visit(IO& io, S& e) {
    visit_all(io, e.family, e.addr, e.port);
}
template <typename IO, Is<ResourceKey> S>
void visit(IO& io, S& k) {
    visit_all(io, k.kind, k.group, k.ns, k.name);
}
template <typename IO, Is<PlanBackend> S>
void visit(IO& io, S& b) {
    visit_all(io, b.id, b.address, b.share, b.where, b.remote);
}
template <typename IO, Is<PlanSubset> S>
void visit(IO& io, S& s) {
    visit_all(io, s.name, s.weight, s.share, s.backends, s.where, s.weight_where, s.weight_path);
}
// The slots are left out: at 4,093 a table they would make the file larger than the applied
// set. What is kept is how many there are.
template <typename IO, Is<FamilyTable> S>
void visit(IO& io, S& t) {
    visit_all(io, t.weighted_backends, t.group_first, t.group_size);
    if constexpr (IO::kReading) {
        t.slots.clear();
        visit(io, t.elided_slots);
    } else {
        const auto slots = static_cast<uint32_t>(t.slot_count());
        visit(io, slots);
    }
}
template <typename IO, Is<OutlierPolicy> S>
void visit(IO& io, S& p) {
    visit_all(io, p.consecutive_errors, p.base_ejection_ms, p.max_ejection_percent, p.min_health_percent, p.where);
}
template <typename IO, Is<BalancePolicy> S>
void visit(IO& io, S& p) {
    visit(io, p.mode);
    if (p.mode < Balance::kHash || p.mode > Balance::kLeastConn) throw Damaged{};
    visit_all(io, p.table_size, p.warmup.duration_ms, p.warmup.min_percent, p.warmup.aggression, p.warmup.where,
              p.where);
}
template <typename IO, Is<KeepalivePolicy> S>
void visit(IO& io, S& p) {
    visit_all(io, p.enabled, p.time_s, p.interval_s, p.probes, p.where);
}
template <typename IO, Is<ConnectionCap> S>
void visit(IO& io, S& p) {
    visit_all(io, p.max_connections, p.where);
}
template <typename IO, Is<LifetimePolicy> S>
void visit(IO& io, S& p) {
    visit_all(io, p.max_duration_ms, p.idle_timeout_ms, p.where, p.duration_where, p.idle_where);
}
template <typename IO, Is<RebalancePolicy> S>
void visit(IO& io, S& p) {
    visit_all(io, p.enabled, p.rate, p.max, p.where);
}
template <typename IO, Is<PlanService> S>
void visit(IO& io, S& s) {
    visit_all(io, s.name, s.id, s.affinity);
    if (s.affinity != Affinity::kNone && s.affinity != Affinity::kSourceIp) throw Damaged{};
    visit_all(io, s.takeover, s.frontends, s.frontends_where, s.affinity_where, s.local_addresses, s.subsets, s.tables,
              s.where, s.origin, s.outlier, s.balance, s.keepalive, s.cap, s.lifetime, s.rebalance);
}
// What follows the strings; both directions call it, the writer with const parts.
template <typename IO, Is<Plan> P, typename R>
void visit_cached(IO& io, P& plan, R& local_routes) {
    visit_all(io, plan.services, plan.ids.services, plan.ids.backends, local_routes);
}

}  // namespace

Result<void> save_plan_cache_at(const std::string& dir, PlanKey key, const Plan& plan,
                                const std::vector<Endpoint>& local_routes) {
    Writer writer;
    visit_cached(writer, plan, local_routes);
    std::string file;
    const auto put = [&file](const auto& v) { file.append(reinterpret_cast<const char*>(&v), sizeof v); };
    put(kMagic);
    put(kFormat);
    put(key.serial);
    put(key.attachment);
    put(static_cast<uint32_t>(writer.order.size()));
    for (const std::string* text : writer.order) {
        put(static_cast<uint32_t>(text->size()));
        file += *text;
    }
    file += writer.body;
    if (auto ok = make_dirs(dir, 0700); !ok) return ok;
    return replace_file(dir + "/" + kPlanCacheFileName, file, 0600);
}

Result<void> save_plan_cache(uint64_t netns_inode, PlanKey key, const Plan& plan,
                             const std::vector<Endpoint>& local_routes) {
    return save_plan_cache_at(state_dir(netns_inode), key, plan, local_routes);
}

std::optional<CachedPlan> load_plan_cache_at(const std::string& dir, PlanKey key) {
    // Not blocking on a FIFO, and only a regular file of a sane size: anything else is no plan.
    Fd fd(::open((dir + "/" + kPlanCacheFileName).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxFileBytes) return std::nullopt;
    std::string file(static_cast<size_t>(st.st_size), '\0');
    size_t got = 0;
    while (got < file.size()) {
        const ssize_t n = ::read(fd.get(), file.data() + got, file.size() - got);
        if (n <= 0) return std::nullopt;
        got += static_cast<size_t>(n);
    }
    Reader reader{.rest = file};
    try {
        uint32_t magic = 0, format = 0, strings = 0;
        PlanKey file_key;
        reader.scalar(magic);
        reader.scalar(format);
        reader.scalar(file_key.serial);
        reader.scalar(file_key.attachment);
        if (magic != kMagic || format != kFormat || file_key != key) return std::nullopt;
        reader.scalar(strings);
        if (strings > reader.rest.size()) return std::nullopt;
        reader.strings.reserve(strings);
        for (uint32_t i = 0; i < strings; ++i) {
            uint32_t size = 0;
            reader.scalar(size);
            if (size > reader.rest.size()) return std::nullopt;
            reader.strings.emplace_back(reader.rest.substr(0, size));
            reader.rest.remove_prefix(size);
        }
        CachedPlan cached{.key = key};
        visit_cached(reader, cached.plan, cached.local_routes);
        if (!reader.rest.empty()) return std::nullopt;
        return cached;
    } catch (const Damaged&) {
        return std::nullopt;  // compiled from the applied set instead
    }
}

std::optional<CachedPlan> load_plan_cache(uint64_t netns_inode, PlanKey key) {
    return load_plan_cache_at(state_dir(netns_inode), key);
}

}  // namespace tcpshift
