#include "tcpshift/apply.h"

#include <set>
#include <algorithm>

#include "tcpshift/dataplane.h"
#include "tcpshift/listeners.h"
#include "tcpshift/local_routes.h"
#include "tcpshift/pins.h"

namespace tcpshift {

Result<Target> enter_target(const TargetOptions& options) {
    auto scope = ScopedNetns::enter(options.netns);
    if (!scope) return fail(scope.error());
    auto netns = current_netns();
    if (!netns) return fail(netns.error());
    return Target{.scope = std::move(*scope), .netns = *netns};
}

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

Result<Applied> load_applied(const NetnsId& netns) {
    Applied applied;
    if (!dataplane_attached(netns)) return applied;
    auto state = load_state(netns.inode);
    if (!state) return fail(state.error());
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
    // Backends that already listen are adopted before any frontend leads to them, so no
    // connection is refused in between.
    Result<void> installed = install_listener_keys(*maps, next, previous, target.netns);
    if (installed) {
        auto adopted = adopt_listeners(*maps, next, &log);
        if (!adopted) installed = fail(adopted.error());
    }
    // Routes only once the listeners are in place; a failure before leaves none to undo.
    Result<std::vector<Endpoint>> routes = fail(system_error("not reached"));
    if (installed) {
        routes = add_local_routes(before.state.local_routes, next, log);
        if (!routes) installed = fail(routes.error());
    }
    if (installed) installed = install_plan(*maps, next, previous, target.netns);
    if (installed) {
        size_t frontends = 0;
        for (const auto& svc : next.services) frontends += svc.frontends.size();
        log << "installed " << next.services.size() << " services: " << frontends << " frontends, "
            << next.ids.backends.size() << " backends, " << next.services.size() << " weight tables\n";
    }
    if (installed) {
        next_state.ids = next.ids;
        next_state.local_routes = drop_local_routes(*routes, next, log);
        installed = save_state(target.netns.inode, next_state);
    }
    if (!installed) {
        if (routes) (void)drop_local_routes(*routes, before.plan, log);
        if (*attached_now) {
            (void)detach_dataplane(target.netns);
        } else if (previous) {
            // The ids of `next` are quarantined from `previous`, so the previous backends find
            // their own ids again; listeners that moved are adopted back.
            if (install_listener_keys(*maps, *previous, &next, target.netns)) {
                (void)adopt_listeners(*maps, *previous, nullptr);
                (void)install_plan(*maps, *previous, &next, target.netns);
            }
        }
        return installed;
    }
    return {};
}


}  // namespace tcpshift
