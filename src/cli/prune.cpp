// tcpshift prune: remove what namespaces deleted without `detach` left behind.
#include <memory>

#include "apply/session.h"
#include "cli/verbs.h"
#include "report/inventory.h"

namespace tcpshift {

namespace {

Result<void> run_prune(bool json, Streams io) {
    if (auto ok = require_root("prune"); !ok) return ok;
    auto lock = PinLock::acquire(Dataplane::kLockPatience);
    if (!lock) return fail(lock.error());
    auto removed = prune_gone();
    if (!removed) return fail(removed.error());
    if (json) {
        io.out << inventory_json(*removed).dump(2) << "\n";
        return {};
    }
    for (const auto& ns : *removed)
        io.out << "removed the pins, state and sock_ops link of deleted network namespace " << ns.inode << " ("
               << ns.pins << ")\n";
    if (removed->empty()) io.out << "nothing to prune: every attached namespace is alive\n";
    return {};
}

}  // namespace

Action add_prune(CLI::App& command) {
    auto json = std::make_shared<bool>(false);
    add_json_flag(command, *json);
    return [json](Streams io) { return run_prune(*json, io); };
}

}  // namespace tcpshift
