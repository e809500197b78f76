#include "apply/transaction.h"

#include <algorithm>

#include "apply/plan_cache.h"

#include "base/failpoint.h"
#include "config/resolve.h"
#include "dataplane/backend_health.h"
#include "dataplane/listeners.h"
#include "dataplane/local_routes.h"
#include "dataplane/pins.h"

namespace tcpshift {

namespace {

void step(const Progress& progress, std::string text) { progress(Event{Event::Kind::kStep, std::move(text)}); }
void warn(const Progress& progress, std::string text) { progress(Event{Event::Kind::kWarning, std::move(text)}); }

std::string interrupted_text(const NetnsId& netns, const AppliedSerials& serials) {
    return "network namespace " + std::to_string(netns.inode) + ": the change to applied set #" +
           std::to_string(serials.installing) + " stopped while it wrote the maps (was its command killed?), so they " +
           "may hold parts of #" + std::to_string(serials.applied) + " and #" + std::to_string(serials.installing);
}

// The stored applied set must be the one the pinned maps hold: compiled from a lost or older
// file, the ids could name other backends than the sockets the maps carry. Nor may a change
// have stopped midway: the maps then hold no one set (repair_interrupted() mends that, and
// alone passes `repairing`).
Result<void> check_serial(Dataplane& dataplane, const AppliedState& state, bool repairing = false) {
    auto maps = dataplane.maps();
    if (!maps) return fail(maps.error());
    auto serials = applied_serials(**maps);
    if (!serials) return fail(serials.error());
    if (serials->installing != 0 && !repairing)
        return fail(system_error(interrupted_text(dataplane.netns(), *serials) +
                                 "; the next `tcpshift apply`, `set` or `delete` repairs them first (an agent that keeps "
                                 "the namespace does within a second)"));
    if (serials->applied == state.serial) return {};
    const uint64_t inode = dataplane.netns().inode;
    const bool missing = state.serial == 0 && state.resources.empty();
    return fail(system_error(state_file(inode) +
                             (missing ? " is missing" : " holds applied set #" + std::to_string(state.serial)) +
                             ", but the data plane pinned at " + pin_dir(inode) + " holds applied set #" +
                             std::to_string(serials->applied) +
                             "; tcpshift will not guess which ids its sockets carry: run `tcpshift detach`, then "
                             "apply again"));
}

Result<PlanKey> plan_key(const DataplaneMaps& maps, uint64_t serial) {
    auto attachment = attachment_id(maps);
    if (!attachment) return fail(attachment.error());
    return PlanKey{.serial = serial, .attachment = *attachment};
}

// Adds the local routes `next` needs that tcpshift does not own yet; returns the routes it
// owns now.
Result<std::vector<Endpoint>> add_local_routes(const std::vector<Endpoint>& owned, const Plan& next,
                                               const Progress& progress) {
    std::vector<Endpoint> now = owned;
    for (const auto& vip : next.local_addresses()) {
        if (std::find(now.begin(), now.end(), vip) != now.end()) continue;
        auto added = add_local_route(vip);
        if (!added) return fail(added.error());
        if (*added) {
            now.push_back(vip);
            step(progress, "added local route for virtual IP " + vip.address_str());
        }
    }
    return now;
}

// Removes the local routes tcpshift owns that `keep` does not need; returns the ones still
// owned.
std::vector<Endpoint> drop_local_routes(const std::vector<Endpoint>& owned, const Plan& keep,
                                        const Progress& progress) {
    const auto wanted = keep.local_addresses();
    std::vector<Endpoint> now;
    for (const auto& vip : owned) {
        if (std::find(wanted.begin(), wanted.end(), vip) != wanted.end()) {
            now.push_back(vip);
        } else if (auto ok = remove_local_route(vip); ok) {
            step(progress, "removed local route for virtual IP " + vip.address_str());
        } else {
            now.push_back(vip);  // keep owning it, so a later change retries
            warn(progress, ok.error().message);
        }
    }
    return now;
}

// A frontend on an address no interface of the namespace has serves only what is routed to
// it: legitimate (an address routed to this host), but more often a typo.
void warn_foreign_frontends(const Plan& plan, const NetnsId& netns, const Progress& progress) {
    for (const auto& svc : plan.services) {
        // connect() is rewritten before any packet: the address need not be anywhere.
        if (!service_paths(svc).socket) continue;
        for (const auto& f : svc.frontends)
            if (!f.is_wildcard() && !address_is_local(f))
                warn(progress, "service " + svc.name + ": frontend " + f.str() + ": no interface of network " +
                                   "namespace " + std::to_string(netns.inode) + " has " + f.address_str() +
                                   ", so only connections routed to it arrive; add the address, or use a "
                                   "wildcard frontend");
    }
}

// Puts `before` back after a failed commit: its plan over whatever of `next` went in, its
// local routes, and its applied set and serial. A namespace attached by this commit is
// detached instead.
// Any part of `next` may be in, so every table that differs is written again.
Result<void> roll_back(Dataplane& dataplane, const DataplaneMaps& maps, const Applied& before, const Plan& next,
                       bool attached_now, const std::vector<Endpoint>& owned_routes, const Progress& progress) {
    if (attached_now) {
        (void)drop_local_routes(owned_routes, Plan{}, progress);
        return dataplane.detach();
    }
    // The ids of `next` are quarantined from `before`, so the previous backends find their own
    // ids again; listeners that moved are adopted back.
    const NetnsId& netns = dataplane.netns();
    Plan restored = before.plan;
    auto reinstalled = [&]() -> Result<void> {
        if (auto ok = fill_written_slots(restored, &next, before.limits); !ok) return ok;
        if (auto ok = install_listener_keys(maps, restored, &next, netns); !ok) return ok;
        if (auto ok = adopt_listeners(maps, restored); !ok) return fail(ok.error());
        return install_plan(maps, restored, &next, netns);
    }();
    const auto kept = drop_local_routes(owned_routes, before.plan, progress);
    (void)add_local_routes(kept, before.plan, progress);
    // The stored set is `before` again either way: with the mark left, the next change puts
    // it back, never takes `next` for whole.
    if (auto ok = save_state(netns.inode, before.state); !ok) return ok;
    if (!reinstalled) return reinstalled;
    return set_applied_serial(maps, before.state.serial);
}

std::string installed_summary(const Plan& plan) {
    size_t frontends = 0, tables = 0;
    for (const auto& svc : plan.services) {
        frontends += svc.frontends.size();
        for (const auto& t : svc.tables) tables += t.has_slots();
    }
    return "installed " + std::to_string(plan.services.size()) + " services: " + std::to_string(frontends) +
           " frontends, " + std::to_string(plan.ids.backends.size()) + " backends, " + std::to_string(tables) +
           " weight tables";
}

// Installs `next` over `before` and stores `next_state`; on failure puts `before` back.
Result<void> commit(Dataplane& dataplane, const Applied& before, AppliedState next_state, const Plan& next,
                    const Progress& progress) {
    if (auto ok = check_frontend_conflicts(next); !ok) return ok;
    const NetnsId netns = dataplane.netns();
    auto attached_now = dataplane.attach(AttachOptions{});
    if (!attached_now) return fail(attached_now.error());
    if (*attached_now)
        step(progress, "attached to network namespace " + std::to_string(netns.inode) + ", pins in " +
                           pin_dir(netns.inode));
    auto maps = dataplane.writable_maps();
    if (!maps) return fail(maps.error());

    const Plan* previous = before.state.resources.empty() ? nullptr : &before.plan;
    std::vector<Endpoint> owned = before.state.local_routes;
    next_state.ids = next.ids;
    next_state.serial = before.state.serial + 1;
    // The plan goes first, under the serial it installs, and "meta" is marked: a command killed
    // from here on leaves what the next change needs to put the maps back (repair_interrupted()).
    // Until the serial moves, readers ignore a plan of another serial.
    auto key = plan_key(**maps, next_state.serial);
    if (!key) return fail(key.error());
    if (auto ok = save_plan_cache(netns.inode, *key, next, owned); !ok) return ok;
    if (auto ok = begin_installing(**maps, next_state.serial); !ok) return ok;
    // Backends that already listen are adopted before any frontend leads to them, so no
    // connection is refused in between; routes only once the listeners are in place.
    auto steps = [&]() -> Result<void> {
        if (auto ok = install_listener_keys(**maps, next, previous, netns); !ok) return ok;
        std::vector<std::string> adopted;
        if (auto ok = adopt_listeners(**maps, next, &adopted); !ok) return fail(ok.error());
        for (auto& line : adopted) step(progress, std::move(line));
        auto routes = add_local_routes(owned, next, progress);
        if (!routes) return fail(routes.error());
        owned = std::move(*routes);
        warn_foreign_frontends(next, netns, progress);
        if (auto ok = install_plan(**maps, next, previous, netns); !ok) return ok;
        step(progress, installed_summary(next));
        if (auto ok = failpoint("commit-before-routes"); !ok) return ok;
        const auto planned_routes = owned;
        owned = drop_local_routes(owned, next, progress);
        next_state.local_routes = owned;
        if (owned != planned_routes)
            if (auto ok = save_plan_cache(netns.inode, *key, next, owned); !ok) return ok;
        if (auto ok = failpoint("commit-before-save"); !ok) return ok;
        // The stored set before the serial: stopped between the two, the change is whole, and
        // the next one only moves the serial.
        if (auto ok = save_state(netns.inode, next_state); !ok) return ok;
        if (auto ok = failpoint("commit-before-serial"); !ok) return ok;
        return set_applied_serial(**maps, next_state.serial);
    };
    auto done = steps();
    if (!done) (void)roll_back(dataplane, **maps, before, next, *attached_now, owned, progress);
    return done;
}

// Reports the diagnostics and leaves them empty, so a caller that reports what is left after
// a failure says nothing twice.
void report_diagnostics(Diagnostics* diag, const Progress& progress) {
    if (!diag) return;
    for (const auto& note : diag->notes) progress(Event{Event::Kind::kNote, note});
    for (const auto& warning : diag->warnings) warn(progress, warning);
    diag->notes.clear();
    diag->warnings.clear();
}

Result<void> take_kernel_paths(Dataplane& dataplane, Plan& plan) {
    auto maps = dataplane.maps();
    if (!maps) return fail(maps.error());
    auto health = backend_health(**maps, plan);
    if (!health) return fail(health.error());
    for (auto& svc : plan.services)
        for (auto& subset : svc.subsets)
            for (auto& b : subset.backends)
                if (auto it = health->find(b.id); it != health->end()) b.remote = it->second.remote;
    return {};
}

// Whether a backend's address came to the namespace or left it since it was installed: the
// same resources then need another path.
bool paths_moved(const Plan& applied) {
    const InterfaceAddresses local = InterfaceAddresses::read();
    const auto is_local = [&](const Endpoint& ep) { return local.holds(ep); };
    for (const auto& svc : applied.services)
        for (const auto& subset : svc.subsets)
            for (const auto& b : subset.backends)
                if (b.remote != reached_remotely(b.address, is_local)) return true;
    return false;
}

}  // namespace

Result<Plan> compile_resources(const std::vector<Resource>& resources, const IdAssignment& ids,
                               Diagnostics* diag, const PlanLimits& limits, const Plan* reuse) {
    auto services = resolve_services(resources, diag);
    if (!services) return fail(services.error());
    auto plan = compile_plan(*services, ids, limits, reuse);
    if (!plan) return fail(plan.error());
    const InterfaceAddresses local = InterfaceAddresses::read();
    mark_remote_backends(*plan, [&](const Endpoint& ep) { return local.holds(ep); });
    return plan;
}

namespace {

// The applied set and the limits of the attached maps, without the plan.
Result<Applied> load_applied_state(Dataplane& dataplane, bool repairing) {
    Applied applied;
    auto state = load_state(dataplane.netns().inode);
    if (!state) return fail(state.error());
    if (auto ok = check_serial(dataplane, *state, repairing); !ok) return fail(ok.error());
    applied.state = std::move(*state);
    auto limits = attached_limits(dataplane.netns());
    if (!limits) return fail(limits.error());
    applied.limits = *limits;
    return applied;
}

}  // namespace

Result<Applied> load_applied_plan(Dataplane& dataplane) {
    if (!dataplane.attached()) return Applied{};
    // The serial the pinned maps hold names the set they were installed from: a cache of that
    // set is its plan.
    auto maps = dataplane.maps();
    if (!maps) return fail(maps.error());
    auto serials = applied_serials(**maps);
    if (!serials) return fail(serials.error());
    const uint64_t serial = serials->applied;
    auto key = plan_key(**maps, serial);
    if (!key) return fail(key.error());
    auto cached = load_plan_cache(dataplane.netns().inode, *key);
    if (!cached) return load_applied(dataplane, PlanSource::kCompile);
    // The stored set must be that one too, or the next change is refused: say so now.
    auto stored = load_state_serial(dataplane.netns().inode);
    if (!stored) return fail(stored.error());
    if (auto ok = check_serial(dataplane, AppliedState{.serial = *stored}); !ok) return fail(ok.error());
    auto limits = attached_limits(dataplane.netns());
    if (!limits) return fail(limits.error());
    Applied applied{.state = AppliedState{.ids = cached->plan.ids, .local_routes = std::move(cached->local_routes),
                                          .serial = serial},
                    .plan = std::move(cached->plan),
                    .limits = *limits};
    if (auto ok = take_kernel_paths(dataplane, applied.plan); !ok) return fail(ok.error());
    return applied;
}

namespace {

// load_applied(); `repairing`: while repair_interrupted() puts the set before a stopped change back.
Result<Applied> load_applied_set(Dataplane& dataplane, PlanSource source, bool repairing) {
    if (!dataplane.attached()) return Applied{};
    auto loaded = load_applied_state(dataplane, repairing);
    if (!loaded) return fail(loaded.error());
    Applied& applied = *loaded;
    auto resources = stored_resources(applied.state);
    if (!resources) return fail(resources.error());
    applied.resources = std::move(*resources);
    auto maps = dataplane.maps();
    if (!maps) return fail(maps.error());
    auto key = plan_key(**maps, applied.state.serial);
    if (!key) return fail(key.error());
    if (source == PlanSource::kCache)
        if (auto cached = load_plan_cache(dataplane.netns().inode, *key)) {
            if (auto ok = take_kernel_paths(dataplane, cached->plan); !ok) return fail(ok.error());
            applied.plan = std::move(cached->plan);
            return loaded;
        }
    auto plan = compile_resources(applied.resources, applied.state.ids, nullptr, applied.limits);
    if (!plan) return fail(plan.error());
    // The applied plan is what the kernel holds: a backend keeps the path it was installed
    // with, so one whose address came or went since is installed again by the next change.
    if (auto ok = take_kernel_paths(dataplane, *plan); !ok) return fail(ok.error());
    applied.plan = std::move(*plan);
    return loaded;
}

// A change whose command stopped while it wrote the maps left "meta" marked with the set it
// installed, and that set's plan in the plan cache. When the stored set is already that one,
// only the serial had yet to move. Otherwise the set before it goes in again over whatever
// part of it went in, as a failed change is rolled back; the local routes it may have added
// stay (none is removed that tcpshift is not sure it added).
Result<void> repair_interrupted(Dataplane& dataplane, const Progress& progress) {
    if (!dataplane.attached()) return {};
    auto maps = dataplane.writable_maps();
    if (!maps) return fail(maps.error());
    auto serials = applied_serials(**maps);
    if (!serials) return fail(serials.error());
    if (serials->installing == 0) return {};
    const NetnsId& netns = dataplane.netns();
    const std::string what = interrupted_text(netns, *serials);
    auto stored = load_state_serial(netns.inode);
    if (!stored) return fail(stored.error());
    if (*stored == serials->installing) {
        if (auto ok = set_applied_serial(**maps, serials->installing); !ok) return ok;
        step(progress, what + "; it was whole and stored, so applied set #" + std::to_string(serials->installing) +
                           " is now the applied set");
        return {};
    }
    auto key = plan_key(**maps, serials->installing);
    if (!key) return fail(key.error());
    auto aborted = load_plan_cache(netns.inode, *key);
    if (!aborted)
        return fail(system_error(what + "; its plan (" + state_dir(netns.inode) + "/" + kPlanCacheFileName +
                                 ") is gone, so tcpshift cannot tell what went in: run `tcpshift detach`, then apply "
                                 "again"));
    auto before = load_applied_set(dataplane, PlanSource::kCompile, true);
    if (!before) return fail(before.error());
    if (auto ok = roll_back(dataplane, **maps, *before, aborted->plan, false, before->state.local_routes, progress);
        !ok)
        return fail(system_error(what + "; putting #" + std::to_string(serials->applied) + " back failed: " +
                                 ok.error().message));
    step(progress, what + "; put applied set #" + std::to_string(serials->applied) + " back");
    return {};
}

}  // namespace

Result<Applied> load_applied(Dataplane& dataplane, PlanSource source) {
    return load_applied_set(dataplane, source, false);
}

Result<Outcome> run_transaction(Dataplane& dataplane, const Edit& edit, const TransactionOptions& options,
                                const Progress& progress) {
    if (!options.dry_run)
        if (auto ok = repair_interrupted(dataplane, progress); !ok) return fail(ok.error());
    auto before = load_applied(dataplane);
    if (!before) return fail(before.error());
    auto next_set = edit(*before);
    if (!next_set) return fail(next_set.error());
    if (!next_set->changed && !paths_moved(before->plan))
        return Outcome{.plan = before->plan, .changed = false};
    auto next = compile_resources(next_set->resources, before->state.ids, options.diagnostics, before->limits,
                                  &before->plan);
    if (!next) {
        Error error = next.error();
        error.message = options.unresolved + error.message;
        return fail(std::move(error));
    }
    report_diagnostics(options.diagnostics, progress);
    if (options.dry_run) return Outcome{.plan = std::move(*next), .changed = false};
    if (auto ok = fill_written_slots(*next, before->state.resources.empty() ? nullptr : &before->plan, before->limits);
        !ok)
        return fail(ok.error());
    if (auto ok = commit(dataplane, *before, std::move(next_set->state), *next, progress); !ok)
        return fail(ok.error());
    return Outcome{.plan = std::move(*next), .changed = true};
}

Result<void> detach_namespace(Dataplane& dataplane, const Progress& progress) {
    if (dataplane.attached())
        if (auto state = load_state(dataplane.netns().inode); state)
            (void)drop_local_routes(state->local_routes, Plan{}, progress);
    return dataplane.detach();
}

}  // namespace tcpshift
