// The catalog's parsers, one per kind that says where workloads are: WorkloadEntry and
// ServiceEntry (service_entry.cpp), Kubernetes Service (kubernetes_service.cpp), and the
// fields they share. Catalog::build is their one caller.
#pragma once

#include "config/mesh/mesh.h"

namespace tcpshift::mesh {

Result<Workload> parse_workload_entry(const Resource& r, Diagnostics& diag);
Result<MeshService> parse_service_entry(const Resource& r, Diagnostics& diag);
Result<MeshService> parse_kubernetes_service(const Resource& r, Diagnostics& diag);

// A port number, 1 to 65535.
Result<uint16_t> parse_port_number(const YAML::Node& node, const std::string& file, const std::string& field);
// The optional `name` and `protocol` of a service port.
Result<void> read_name_and_protocol(const YAML::Node& p, const std::string& file, const std::string& field,
                                    ServicePort& port);

}  // namespace tcpshift::mesh
