// The BPF programs of bpf/steer.bpf.c, loaded into the kernel.
#pragma once

#include <cstdint>
#include <memory>

#include "base/error.h"
#include "dataplane/maps.h"

struct steer_bpf;

namespace tcpshift {

struct SteerBpfDeleter {
    void operator()(steer_bpf* skel) const;
};

// The programs and maps of bpf/steer.bpf.c, loaded into the kernel but attached nowhere.
// The BPF tests run it directly; attach_dataplane() pins and attaches it.
class SteerProgram {
   public:
    // sock_ops looks only at sockets of the namespace whose cookie is `netns_cookie`.
    // `max_services` sizes the per-service maps (0: TS_MAX_SERVICES); see attach --max-services.
    static Result<SteerProgram> load(uint64_t hash_seed, uint64_t netns_cookie, uint32_t max_services = 0);

    int steer_fd() const;
    int register_and_count_fd() const;
    Result<DataplaneMaps> maps() const;  // duplicated fds, independent of this object
    steer_bpf* skeleton() const { return skel_.get(); }

   private:
    std::unique_ptr<steer_bpf, SteerBpfDeleter> skel_;
};

}  // namespace tcpshift
