#include "apply/target.h"

namespace tcpshift {

Result<Target> enter_target(const TargetOptions& options) {
    auto scope = ScopedNetns::enter(options.netns);
    if (!scope) return fail(scope.error());
    auto netns = current_netns();
    if (!netns) return fail(netns.error());
    return Target{.scope = std::move(*scope), .netns = *netns};
}

}  // namespace tcpshift
