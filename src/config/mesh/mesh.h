// The Istio and Gateway API side of configuration: where workloads listen and which labels
// they carry (WorkloadEntry), the services that select them (ServiceEntry, Kubernetes Service),
// and the routes that turn both into tcpshift services.
//
// Name resolution, as in Istio on Kubernetes:
// - A host names a Service by "name" (in the referring resource's namespace), "name.ns",
//   "name.ns.svc" or "name.ns.svc.cluster.local"; a ServiceEntry by one of its `hosts`,
//   preferring the referrer's namespace.
// - Selectors (Service `selector`, ServiceEntry `workloadSelector`) select WorkloadEntries of
//   their own namespace by label, the way Kubernetes selects pods.
// - A gateway reference is "name" (the referrer's namespace) or "ns/name".
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace tcpshift::mesh {

using Labels = std::map<std::string, std::string>;

struct Workload {
    std::string name;
    std::string ns;
    Endpoint address;  // port 0
    Labels labels;
    std::map<std::string, uint16_t> ports;  // port name -> number (WorkloadEntry `ports`)
    SourceRef where;
};

struct ServicePort {
    std::string name;
    uint16_t number = 0;
    uint16_t target_number = 0;  // 0: not given
    std::string target_name;     // a named targetPort of a Service
    std::string protocol;
    SourceRef where;
};

struct MeshService {
    std::string kind;  // "Service" or "ServiceEntry"
    std::string name;
    std::string ns;
    std::vector<std::string> hosts;
    std::vector<Endpoint> addresses;  // virtual IPs, port 0
    std::vector<ServicePort> ports;
    std::optional<Labels> selector;  // none: selects no workload by label
    std::vector<Workload> endpoints;  // a ServiceEntry's inline endpoints
    SourceRef where;

    std::string display() const { return kind + " " + ns + "/" + name; }
    std::string port_list() const;
};

// Everything the route resolvers look up.
class Catalog {
   public:
    static Result<Catalog> build(const std::vector<Resource>& resources, Diagnostics& diag);

    // A host as a VirtualService or DestinationRule writes it, seen from namespace `ns`.
    const MeshService* find_host(const std::string& host, const std::string& ns) const;
    // A Gateway API backendRef: kind "Service" or "ServiceEntry" by name.
    const MeshService* find_named(const std::string& kind, const std::string& name, const std::string& ns) const;
    // The workloads of a service, narrowed by a subset's labels.
    std::vector<const Workload*> select(const MeshService& service, const Labels& subset) const;

   private:
    std::vector<Workload> workloads_;
    std::vector<MeshService> services_;
};

// Where the workloads of `service` listen for service port `port`. The port must be one of
// the service's ports; `where` and `field` name the reference in errors.
Result<std::vector<Endpoint>> backend_endpoints(const MeshService& service, const ServicePort& port,
                                                const std::vector<const Workload*>& workloads,
                                                const std::string& where, const std::string& field);

// The port of a service that a route names, or its only port when the route names none.
Result<const ServicePort*> service_port(const MeshService& service, std::optional<uint16_t> number,
                                        const std::string& where, const std::string& field);

// A single address, optionally written as a /32 or /128 prefix ("10.96.0.50/32"); wider
// prefixes are refused, naming `what` tcpshift needs them for.
Result<Endpoint> parse_host_address(const YAML::Node& node, const std::string& file, const std::string& field,
                                    const std::string& what);

Result<Labels> parse_labels(const YAML::Node& node, const std::string& file, const std::string& field);
std::string labels_str(const Labels& labels);

// Istio Gateway, VirtualService and DestinationRule into services.
Result<std::vector<ServiceSpec>> resolve_istio(const std::vector<Resource>& resources, const Catalog& catalog,
                                               Diagnostics& diag);
// Gateway API Gateway and TCPRoute into services.
Result<std::vector<ServiceSpec>> resolve_gateway_api(const std::vector<Resource>& resources, const Catalog& catalog,
                                                     Diagnostics& diag);

// Everything but the native TrafficShift: builds the catalog and runs both resolvers.
Result<std::vector<ServiceSpec>> resolve_mesh_services(const std::vector<Resource>& resources, Diagnostics& diag);

// Refuses a virtual IP that cannot name one service: unspecified, multicast, broadcast, or a
// public address (a local route would capture the namespace's traffic to the real host) unless
// the resource is annotated tcpshift.io/takeover: "true". `where` is "file:line: field".
Result<void> check_virtual_ip(const Endpoint& vip, const Resource& r, const std::string& where);

// The wildcard frontends of a port: 0.0.0.0 and [::].
std::vector<Endpoint> wildcard_frontends(uint16_t port);

}  // namespace tcpshift::mesh
