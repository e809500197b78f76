// The maps of bpf/steer.bpf.c as userspace holds them: one fd each, and their pin names.
#pragma once

#include <array>

#include "base/fd.h"

namespace tcpshift {

// The pinned maps of an attached namespace, by the names they have in bpf/steer.bpf.c and
// under the pin directory.
struct DataplaneMaps {
    Fd frontends;
    Fd services;
    Fd tables;
    Fd sockets;
    Fd listeners;
    Fd service_stats;
    Fd backend_stats;
    Fd frontend_ports;
    Fd connections;   // socket storage: a listener's backend, cloned to what it accepts
    Fd backend_tags;  // backend id -> fingerprint of its address
    Fd route_stats;   // (service id, backend id) -> counters of connections through the service
    Fd meta;          // ABI version and the serial of the applied set the maps hold
};

// Every map with its name in bpf/steer.bpf.c and under the pin directory: the one list that
// pinning, opening and granting walk.
struct MapName {
    const char* name;
    Fd DataplaneMaps::*fd;
};
inline constexpr std::array<MapName, 12> kDataplaneMaps = {{{"frontends", &DataplaneMaps::frontends},
                                                           {"services", &DataplaneMaps::services},
                                                           {"tables", &DataplaneMaps::tables},
                                                           {"sockets", &DataplaneMaps::sockets},
                                                           {"listeners", &DataplaneMaps::listeners},
                                                           {"service_stats", &DataplaneMaps::service_stats},
                                                           {"backend_stats", &DataplaneMaps::backend_stats},
                                                           {"frontend_ports", &DataplaneMaps::frontend_ports},
                                                           {"connections", &DataplaneMaps::connections},
                                                           {"backend_tags", &DataplaneMaps::backend_tags},
                                                           {"route_stats", &DataplaneMaps::route_stats},
                                                           {"meta", &DataplaneMaps::meta}}};

}  // namespace tcpshift
