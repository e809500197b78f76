// Writing a plan into the maps of an attached namespace: the flip from one plan to the next.
#pragma once

#include "base/error.h"
#include "base/netns.h"
#include "compile/plan.h"
#include "dataplane/maps.h"

struct ts_table;
struct ts_backend_addr;

namespace tcpshift {

// Prepares the maps for the backend ids of `next`, given that they hold `previous` (nullptr:
// nothing yet): an id that is new to its address gets that address's tag and loses any
// socket and counter it had; then writes the listener keys, so that sock_ops registers the
// backends as they start listening. Callers adopt the listeners that already exist after it
// (adopt_listeners), then call install_plan().
Result<void> install_listener_keys(const DataplaneMaps& maps, const Plan& next, const Plan* previous,
                                   const NetnsId& netns);

// Makes the maps hold `next`, given that they hold `previous` (nullptr: nothing yet) and that
// install_listener_keys() ran for `next`. New tables go in before the frontends that use
// them; removals go last. Each table is replaced whole by one update of its entry.
Result<void> install_plan(const DataplaneMaps& maps, const Plan& next, const Plan* previous, const NetnsId& netns);

// Builds the slots install_plan() needs of `next` over `previous`: those of each table it writes
// that a plan read from the plan cache left out (see fill_slots()).
Result<void> fill_written_slots(Plan& next, const Plan* previous, const PlanLimits& limits);

// The fields before the backends and slots of the kernel table that holds `t`, a table of
// `svc`: affinity, paths, slot count, balance mode, keepalive, minHealthPercent and warmup, every
// byte of them. verify compares them.
void table_header(const PlanService& svc, const FamilyTable& t, ts_table& table);
// The kernel's TS_BALANCE_* code of a mode.
uint32_t balance_code(Balance balance);

// What "backend_addrs" holds for backend `b` of a service with `outlier`: its address, path,
// cap, and when failures eject it. verify compares it.
ts_backend_addr backend_addr(const PlanBackend& b, const OutlierPolicy& outlier, uint32_t max_connections);

}  // namespace tcpshift
