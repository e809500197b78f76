#include "compile/weight_table.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tcpshift {

namespace {

uint64_t fnv1a(const std::string& text, uint64_t basis) {
    uint64_t h = basis;
    for (unsigned char c : text) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

}  // namespace

std::vector<uint32_t> slot_quotas(const std::vector<WeightedBackend>& backends, uint32_t slots) {
    std::vector<uint32_t> quota(backends.size(), 0);
    double total = 0;
    for (const auto& b : backends) total += b.weight;
    if (total <= 0) return quota;

    std::vector<double> remainder(backends.size());
    uint32_t given = 0;
    for (size_t i = 0; i < backends.size(); ++i) {
        const double exact = backends[i].weight / total * slots;
        quota[i] = static_cast<uint32_t>(std::floor(exact));
        remainder[i] = exact - quota[i];
        given += quota[i];
    }
    std::vector<size_t> order(backends.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return remainder[a] > remainder[b]; });
    for (size_t k = 0; given < slots && k < order.size(); ++k) {
        if (backends[order[k]].weight <= 0) continue;
        ++quota[order[k]];
        ++given;
    }
    return quota;
}

std::vector<uint16_t> build_weight_table(const std::vector<WeightedBackend>& backends, uint32_t slots,
                                         uint16_t empty) {
    std::vector<uint16_t> table(slots, empty);
    const auto quota = slot_quotas(backends, slots);
    const size_t n = backends.size();
    std::vector<uint64_t> offset(n), skip(n), next(n, 0);
    std::vector<uint32_t> taken(n, 0);
    for (size_t i = 0; i < n; ++i) {
        offset[i] = fnv1a(backends[i].name, 0xcbf29ce484222325ULL) % slots;
        skip[i] = fnv1a(backends[i].name, 0x84222325cbf29ce4ULL) % (slots - 1) + 1;
    }
    uint32_t filled = 0;
    const uint32_t wanted = std::accumulate(quota.begin(), quota.end(), 0u);
    while (filled < wanted) {
        for (size_t i = 0; i < n && filled < wanted; ++i) {
            if (taken[i] >= quota[i]) continue;
            for (;;) {
                const uint64_t slot = (offset[i] + next[i] * skip[i]) % slots;
                ++next[i];
                if (table[slot] == empty) {
                    table[slot] = backends[i].id;
                    ++taken[i];
                    ++filled;
                    break;
                }
            }
        }
    }
    return table;
}

std::vector<uint16_t> build_round_robin(const std::vector<RoundRobinGroup>& groups, uint32_t max_slots) {
    std::vector<uint64_t> weight;
    for (const auto& g : groups) weight.push_back(g.ids.empty() ? 0 : g.weight);
    uint64_t divisor = 0, total = 0;
    for (uint64_t w : weight) divisor = std::gcd(divisor, w);
    if (divisor == 0) return {};
    for (uint64_t& w : weight) total += w /= divisor;
    if (total > max_slots) {
        std::vector<WeightedBackend> scaled;
        for (uint64_t w : weight) scaled.push_back({.weight = static_cast<double>(w)});
        const auto quota = slot_quotas(scaled, max_slots);
        divisor = 0;
        total = 0;
        for (size_t k = 0; k < weight.size(); ++k) divisor = std::gcd(divisor, weight[k] = quota[k]);
        for (uint64_t& w : weight) total += w /= divisor;
    }
    // Repeats of the weights' cycle after which each group's backends have had equal turns.
    uint64_t repeats = 1;
    for (size_t k = 0; k < groups.size(); ++k)
        if (weight[k]) repeats = std::lcm(repeats, groups[k].ids.size() / std::gcd(groups[k].ids.size(), weight[k]));
    if (total * repeats > max_slots) repeats = std::max<uint64_t>(1, max_slots / total);

    std::vector<uint16_t> cycle;
    std::vector<int64_t> current(groups.size(), 0);
    std::vector<size_t> taken(groups.size(), 0);
    for (uint64_t turn = 0; turn < total * repeats; ++turn) {
        size_t best = 0;
        for (size_t k = 0; k < groups.size(); ++k) {
            current[k] += static_cast<int64_t>(weight[k]);
            if (current[k] > current[best]) best = k;
        }
        current[best] -= static_cast<int64_t>(total);
        const auto& ids = groups[best].ids;
        cycle.push_back(ids[taken[best]++ % ids.size()]);
    }
    return cycle;
}

}  // namespace tcpshift
