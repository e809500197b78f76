// The BPF side of one network namespace: loading, pinning, attaching, writing plans, reading
// back what the kernel holds, and its counters. Each part has a header of its own; this one
// includes them all.
#pragma once

#include "dataplane/attach.h"
#include "dataplane/backend_sockets.h"
#include "dataplane/counters.h"
#include "dataplane/install.h"
#include "dataplane/listener_keys.h"
#include "dataplane/maps.h"
#include "dataplane/program.h"
#include "dataplane/verify.h"
