// Runs the sk_lookup program on a crafted context with BPF_PROG_TEST_RUN: what the BPF tests
// check the program's choices with, and what bench/ times a lookup with.
#pragma once

#include <cstdint>

#include "base/endpoint.h"
#include "base/error.h"

namespace tcpshift {

struct LookupRun {
    int verdict = -1;         // SK_PASS (1) or SK_DROP (0)
    uint64_t cookie = 0;      // the selected socket, 0 for none
    uint32_t duration_ns = 0; // the kernel's mean time per run
};

// Runs `prog_fd` `repeat` times on a lookup from `client` to `frontend`.
Result<LookupRun> run_lookup(int prog_fd, const Endpoint& client, const Endpoint& frontend, int protocol,
                             uint32_t repeat = 1);

}  // namespace tcpshift
