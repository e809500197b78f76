// The weighted slot table that sk_lookup indexes with a flow hash.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tcpshift {

struct WeightedBackend {
    uint16_t id = 0;   // backend id, what a slot holds
    std::string name;  // stable identity ("127.0.0.1:9001"); it fixes the backend's slot preferences
    double weight = 0; // any non-negative scale; only ratios matter
};

// Number of slots each backend gets: weight/sum of `slots`, rounded by largest remainder,
// so every share is within one slot of exact and the counts add up to `slots`. A weight whose
// exact share is below one slot may get none (compile_plan refuses it).
std::vector<uint32_t> slot_quotas(const std::vector<WeightedBackend>& backends, uint32_t slots);

// Fills `slots` entries (a prime) with backend ids, each backend taking its quota. Slots are
// claimed in Maglev order: each backend walks its own permutation of the table, derived from
// its name, so a weight change or a removed backend moves few slots and therefore few
// source-IP-affine clients. With no weight at all, every slot is `empty`.
std::vector<uint16_t> build_weight_table(const std::vector<WeightedBackend>& backends, uint32_t slots,
                                         uint16_t empty);

}  // namespace tcpshift
