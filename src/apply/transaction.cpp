#include "apply/transaction.h"

#include <set>
#include <algorithm>

#include "dataplane/dataplane.h"
#include "base/failpoint.h"
#include "config/resolve.h"
#include "dataplane/listeners.h"
#include "dataplane/local_routes.h"
#include "dataplane/pins.h"

namespace tcpshift {

void print_diagnostics(const Diagnostics& diag, std::ostream& err) {
    for (const auto& note : diag.notes) err << "note: " << note << "\n";
    for (const auto& warning : diag.warnings) err << "warning: " << warning << "\n";
}

Result<Plan> compile_resources(const std::vector<Resource>& resources, const IdAssignment& ids,
                               Diagnostics* diag, const PlanLimits& limits) {
    auto services = resolve_services(resources, diag);
    if (!services) return fail(services.error());
    return compile_plan(*services, ids, limits);
}

namespace {

// The stored applied set must be the one the pinned maps hold: compiled from a lost or older
// file, a plan would hand ids that live sockets and counters carry to other addresses.
Result<void> check_serial(const NetnsId& netns, const AppliedState& state) {
    auto maps = open_dataplane(netns);
    if (!maps) return fail(maps.error());
    auto serial = applied_serial(*maps);
    if (!serial) return fail(serial.error());
    if (*serial == state.serial) return {};
    const std::string file = state_dir(netns.inode) + "/applied.json";
    return fail(system_error(
        file + (state.serial == 0 && state.resources.empty() ? " is missing" : " holds applied set #" + std::to_string(state.serial)) +
        ", but the data plane pinned at " + pin_dir(netns.inode) + " holds applied set #" + std::to_string(*serial) +
        "; tcpshift will not guess which ids its sockets carry: run `tcpshift detach`, then apply again"));
}

}  // namespace

Result<Applied> load_applied(const NetnsId& netns) {
    Applied applied;
    if (!dataplane_attached(netns)) return applied;
    auto state = load_state(netns.inode);
    if (!state) return fail(state.error());
    if (auto ok = check_serial(netns, *state); !ok) return fail(ok.error());
    applied.state = std::move(*state);
    auto limits = attached_limits(netns);
    if (!limits) return fail(limits.error());
    applied.limits = *limits;
    auto resources = stored_resources(applied.state);
    if (!resources) return fail(resources.error());
    auto plan = compile_resources(*resources, applied.state.ids, nullptr, applied.limits);
    if (!plan) return fail(plan.error());
    applied.plan = std::move(*plan);
    return applied;
}

Result<std::vector<Resource>> merged_resources(const AppliedState& state, const std::vector<Resource>& incoming) {
    auto stored = stored_resources(state);
    if (!stored) return fail(stored.error());
    std::set<std::string> incoming_keys;
    for (const auto& in : incoming) incoming_keys.insert(in.key());
    std::vector<Resource> merged;
    for (auto& r : *stored)
        if (!incoming_keys.contains(r.key())) merged.push_back(std::move(r));
    merged.insert(merged.end(), incoming.begin(), incoming.end());
    return merged;
}

namespace {

// Adds the local routes `next` needs that tcpshift does not own yet; returns the routes it
// owns now.
Result<std::vector<Endpoint>> add_local_routes(const std::vector<Endpoint>& owned, const Plan& next,
                                               std::ostream& log) {
    std::vector<Endpoint> now = owned;
    for (const auto& vip : next.local_addresses()) {
        if (std::find(now.begin(), now.end(), vip) != now.end()) continue;
        auto added = add_local_route(vip);
        if (!added) return fail(added.error());
        if (*added) {
            now.push_back(vip);
            log << "added local route for virtual IP " << vip.address_str() << "\n";
        }
    }
    return now;
}

}  // namespace

std::vector<Endpoint> drop_local_routes(const std::vector<Endpoint>& owned, const Plan& keep, std::ostream& log) {
    const auto wanted = keep.local_addresses();
    std::vector<Endpoint> now;
    for (const auto& vip : owned) {
        if (std::find(wanted.begin(), wanted.end(), vip) != wanted.end()) {
            now.push_back(vip);
        } else if (auto ok = remove_local_route(vip); ok) {
            log << "removed local route for virtual IP " << vip.address_str() << "\n";
        } else {
            now.push_back(vip);  // keep owning it, so a later change retries
            log << "warning: " << ok.error().message << "\n";
        }
    }
    return now;
}

namespace {

// A frontend on an address no interface of the namespace has serves only what is routed to
// it: legitimate (an address routed to this host), but more often a typo.
void warn_foreign_frontends(const Plan& plan, const NetnsId& netns, std::ostream& log) {
    for (const auto& svc : plan.services)
        for (const auto& f : svc.frontends)
            if (!f.is_wildcard() && !address_is_local(f))
                log << "warning: service " << svc.name << ": frontend " << f.str() << ": no interface of network "
                    << "namespace " << netns.inode << " has " << f.address_str()
                    << ", so only connections routed to it arrive; add the address, or use a wildcard frontend\n";
}

// Puts `before` back after a failed commit: its plan over whatever of `next` went in, its
// local routes, and its applied set and serial. A namespace attached by this commit is
// detached instead.
void roll_back(const Target& target, const DataplaneMaps& maps, const Applied& before, const Plan& next,
               bool attached_now, const std::vector<Endpoint>& owned_routes, std::ostream& log) {
    if (attached_now) {
        (void)drop_local_routes(owned_routes, Plan{}, log);
        (void)detach_dataplane(target.netns);
        return;
    }
    // The ids of `next` are quarantined from `before`, so the previous backends find their own
    // ids again; listeners that moved are adopted back.
    if (install_listener_keys(maps, before.plan, &next, target.netns)) {
        (void)adopt_listeners(maps, before.plan, nullptr);
        (void)install_plan(maps, before.plan, &next, target.netns);
    }
    const auto kept = drop_local_routes(owned_routes, before.plan, log);
    (void)add_local_routes(kept, before.plan, log);
    (void)save_state(target.netns.inode, before.state);
    (void)set_applied_serial(maps, before.state.serial);
}

}  // namespace

Result<void> commit(const Target& target, const Applied& before, AppliedState next_state, const Plan& next,
                    std::ostream& log) {
    if (auto ok = check_frontend_conflicts(next); !ok) return ok;
    auto attached_now = attach_dataplane(target.netns, AttachOptions{});
    if (!attached_now) return fail(attached_now.error());
    if (*attached_now)
        log << "attached to network namespace " << target.netns.inode << ", pins in "
            << pin_dir(target.netns.inode) << "\n";
    auto maps = open_dataplane(target.netns);
    if (!maps) return fail(maps.error());

    const Plan* previous = before.state.resources.empty() ? nullptr : &before.plan;
    std::vector<Endpoint> owned = before.state.local_routes;
    // Backends that already listen are adopted before any frontend leads to them, so no
    // connection is refused in between; routes only once the listeners are in place.
    auto steps = [&]() -> Result<void> {
        if (auto ok = install_listener_keys(*maps, next, previous, target.netns); !ok) return ok;
        if (auto adopted = adopt_listeners(*maps, next, &log); !adopted) return fail(adopted.error());
        auto routes = add_local_routes(owned, next, log);
        if (!routes) return fail(routes.error());
        owned = std::move(*routes);
        warn_foreign_frontends(next, target.netns, log);
        if (auto ok = install_plan(*maps, next, previous, target.netns); !ok) return ok;
        size_t frontends = 0;
        for (const auto& svc : next.services) frontends += svc.frontends.size();
        log << "installed " << next.services.size() << " services: " << frontends << " frontends, "
            << next.ids.backends.size() << " backends, " << next.services.size() << " weight tables\n";
        next_state.ids = next.ids;
        next_state.serial = before.state.serial + 1;
        owned = drop_local_routes(owned, next, log);
        next_state.local_routes = owned;
        if (auto ok = set_applied_serial(*maps, next_state.serial); !ok) return ok;
        if (auto ok = failpoint("commit-before-save"); !ok) return ok;
        return save_state(target.netns.inode, next_state);
    };
    auto done = steps();
    if (!done) roll_back(target, *maps, before, next, *attached_now, owned, log);
    return done;
}

}  // namespace tcpshift
