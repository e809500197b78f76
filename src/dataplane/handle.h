// A hold on one network namespace's data plane: the namespace entered, the pin lock and the
// pinned maps, together for as long as the handle lives. Readers open it shared and writers
// exclusive; the maps a change goes through are handed out only to an exclusive handle, so
// the lock rule is the type's, not the caller's.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/netns.h"
#include "dataplane/dataplane.h"
#include "dataplane/pins.h"

namespace tcpshift {

class Dataplane {
   public:
    enum class Access {
        kShared,     // a reader: waits for the writer before it
        kExclusive,  // a writer
        kUnlocked,   // a reader that must answer while a writer works (the metrics endpoint):
                     // it reads the maps as they are at that instant, and takes no lock
    };
    // How long a handle waits for the writer before it.
    static constexpr std::chrono::milliseconds kLockPatience{10000};

    // Enters `netns` (a name under /var/run/netns or a path; empty: the caller's namespace)
    // and takes the pin lock as `access` says, waiting up to `patience` for the writer before
    // it. Refuses where /sys/fs/bpf is not the host's bpffs.
    static Result<Dataplane> open(const std::string& netns, Access access,
                                  std::chrono::milliseconds patience = kLockPatience);

    const NetnsId& netns() const { return netns_; }
    bool exclusive() const { return access_ == Access::kExclusive; }
    // Whether tcpshift is attached to the namespace.
    bool attached() const;

    // The pinned maps, opened on first use; fails when nothing is attached.
    Result<const DataplaneMaps*> maps();
    // The same, for a change; fails on a shared handle.
    Result<const DataplaneMaps*> writable_maps();

    // Attaches when nothing is; true when this call attached. Exclusive handles only.
    Result<bool> attach(const AttachOptions& options);
    // Removes the programs, pins and state. Exclusive handles only.
    Result<void> detach();

   private:
    Dataplane(ScopedNetns scope, NetnsId netns, std::optional<PinLock> lock, Access access)
        : scope_(std::move(scope)), netns_(netns), lock_(std::move(lock)), access_(access) {}
    Result<void> require_exclusive(const char* what) const;

    ScopedNetns scope_;  // declared first: left last, after the maps are closed
    NetnsId netns_;
    std::optional<PinLock> lock_;  // none when kUnlocked
    Access access_;
    std::optional<DataplaneMaps> maps_;
};

}  // namespace tcpshift
