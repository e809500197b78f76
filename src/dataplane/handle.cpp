#include "dataplane/handle.h"

namespace tcpshift {

Result<Dataplane> Dataplane::open(const std::string& netns, Access access, std::chrono::milliseconds patience) {
    if (auto ok = check_host_bpffs(); !ok) return fail(ok.error());
    auto scope = ScopedNetns::enter(netns);
    if (!scope) return fail(scope.error());
    auto id = current_netns();
    if (!id) return fail(id.error());
    if (access == Access::kUnlocked) return Dataplane(std::move(*scope), *id, std::nullopt, access);
    auto lock = PinLock::acquire(patience, access == Access::kExclusive ? PinLock::Mode::kExclusive
                                                                             : PinLock::Mode::kShared);
    if (!lock) return fail(lock.error());
    return Dataplane(std::move(*scope), *id, std::move(*lock), access);
}

bool Dataplane::attached() const { return dataplane_attached(netns_); }

Result<const DataplaneMaps*> Dataplane::maps() {
    if (!maps_) {
        auto opened = open_dataplane(netns_);
        if (!opened) return fail(opened.error());
        maps_ = std::move(*opened);
    }
    return &*maps_;
}

Result<const DataplaneMaps*> Dataplane::writable_maps() {
    if (auto ok = require_exclusive("change the maps"); !ok) return fail(ok.error());
    return maps();
}

Result<bool> Dataplane::attach(const AttachOptions& options) {
    if (auto ok = require_exclusive("attach"); !ok) return fail(ok.error());
    return attach_dataplane(netns_, options);
}

Result<void> Dataplane::detach() {
    if (auto ok = require_exclusive("detach"); !ok) return ok;
    maps_.reset();
    return detach_dataplane(netns_);
}

Result<void> Dataplane::require_exclusive(const char* what) const {
    if (access_ == Access::kExclusive) return {};
    return fail(system_error(std::string("network namespace ") + std::to_string(netns_.inode) + ": cannot " + what +
                             " through a shared handle; writers open the data plane exclusive"));
}

}  // namespace tcpshift
