/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The maps of the data plane and the constants the loader sets. Each map is named in
 * TS_PINNED_MAPS or TS_PROGRAM_MAPS of bpf/abi.h, the list userspace walks; a BPF test holds
 * the loaded object to exactly that list.
 */
#ifndef TCPSHIFT_MAPS_BPF_H
#define TCPSHIFT_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpf/abi.h"

/* Set by the loader between open and load. */
const volatile __u64 hash_seed = 0;    /* random per attach */
const volatile __u64 netns_cookie = 0; /* the namespace this data plane serves */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TS_MAX_FRONTENDS);
	__type(key, struct ts_frontend_key);
	__type(value, struct ts_frontend);
} frontends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ts_frontend_ports);
} frontend_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ts_service);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the tables that exist, not for room */
	__uint(max_entries, TS_MAX_SERVICES * TS_TABLE_FAMILIES);
	__type(key, __u32);
	__type(value, struct ts_table);
} tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, TS_MAX_BACKENDS * TS_GROUP_SLOTS);
	__type(key, __u32); /* TS_SOCKET_KEY(backend id, member) */
	__type(value, __u64);
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TS_MAX_LISTENER_KEYS);
	__type(key, struct ts_listener_key);
	__type(value, struct ts_listener);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ts_service_stats);
} service_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct ts_connection);
} connections SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ts_backend_tag);
} backend_tags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ts_backend_stats);
} backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TS_MAX_ROUTES);
	__type(key, struct ts_route_key);
	__type(value, struct ts_backend_stats);
} route_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ts_backend_addr);
} backend_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ts_backend_health);
} backend_health SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ts_client);
} clients SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TS_MAX_CLIENT_NAMESPACES);
	__type(key, __u64);   /* netns cookie */
	__type(value, __u32); /* 1 */
} client_scope SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ts_backend_load);
} backend_load SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ts_backend_sli);
} backend_sli SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ts_meta);
} meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TS_MAX_RECENT_FLOWS);
	__type(key, struct ts_flow_key);
	__type(value, struct ts_flow_memory);
} recent_flows SEC(".maps");

/* The round-robin turn of each service: sk_lookup and connect() take the next one with an
 * atomic add; a turn indexes the live table's cycle. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
} turns SEC(".maps");

#endif /* TCPSHIFT_MAPS_BPF_H */
