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

// A subset in a round robin: its weight and the ids of its backends, which take its turns in
// rotation.
struct RoundRobinGroup {
    uint64_t weight = 0;
    std::vector<uint16_t> ids;
};

// One cycle of a smooth weighted round robin over the groups, at most `max_slots` long: turn t
// of the service takes entry t mod the cycle's length, so every cycle's worth of consecutive
// turns splits exactly by weight (20/80: a cycle of 5 turns, 1 and 4), and the turns of a group
// are spread through the cycle rather than bunched. The cycle repeats the weights' smallest
// cycle as often as needed for each group's backends to take equal turns, when that fits; when
// the weights' own cycle does not fit, they are rounded to `max_slots` by largest remainder.
std::vector<uint16_t> build_round_robin(const std::vector<RoundRobinGroup>& groups, uint32_t max_slots);

}  // namespace tcpshift
