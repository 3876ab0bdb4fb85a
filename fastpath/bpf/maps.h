/* SPDX-License-Identifier: Apache-2.0 */
/* Every map of the fast path, with the reason it exists. */
#ifndef PILOTFISH_MAPS_H
#define PILOTFISH_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "fp_abi.h"

/* VIP:port/proto -> service; written by TypeScript when the config names a cluster. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FP_MAX_SERVICES);
	__type(key, struct fp_sockaddr);
	__type(value, struct fp_service);
} services SEC(".maps");

/* backend id -> address; ids are allocated by TypeScript and never reused while mapped. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FP_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fp_sockaddr);
} backends SEC(".maps");

/* service.id * FP_MAGLEV_MAX + slot -> backend id (0 = empty); only changed slots are written. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FP_MAX_SERVICES * FP_MAGLEV_MAX);
	__type(key, __u32);
	__type(value, __u32);
} maglev SEC(".maps");

/* client 5-tuple -> pinned backend: established flows survive table changes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FP_FLOW_ENTRIES);
	__type(key, struct fp_flow_key);
	__type(value, struct fp_flow);
} flows SEC(".maps");

/* backend->client 5-tuple -> the VIP the client spoke to, for replies. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FP_FLOW_ENTRIES);
	__type(key, struct fp_flow_key);
	__type(value, struct fp_sockaddr);
} rev_flows SEC(".maps");

/* One entry of global knobs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, FP_EVENTS_BYTES);
} events SEC(".maps");

/* rx queue -> AF_XDP socket of the C forwarder. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, FP_XSK_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* tgid -> 1 for pilotfish's own processes: their connections are never intercepted. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} proxy_pids SEC(".maps");

/* destination port (network order) -> 1: connect4/6 leave these alone. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u16);
	__type(value, __u32);
} skip_ports SEC(".maps");

/* socket cookie -> original destination, between connect() and the established callback. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FP_ORIG_DST_ENTRIES);
	__type(key, __u64);
	__type(value, struct fp_sockaddr);
} cookie_dst SEC(".maps");

/* app socket's local address:port -> original destination: what the proxy asks for. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FP_ORIG_DST_ENTRIES);
	__type(key, struct fp_sockaddr);
	__type(value, struct fp_sockaddr);
} orig_dst SEC(".maps");

/* local port (network order) -> 1: loopback connections touching it get the sockmap short-cut. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u32);
} sockmap_ports SEC(".maps");

/* 4-tuple -> established local socket, for sk_msg redirection to the peer. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, FP_SOCK_ENTRIES);
	__type(key, struct fp_flow_key);
	__type(value, __u64);
} sock_pairs SEC(".maps");

/* socket cookie -> what connect()/accept knew: observed sockets until they close. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FP_CONN_ENTRIES);
	__type(key, __u64);
	__type(value, struct fp_conn);
} conns SEC(".maps");

/* destination -> aggregates: the metrics side, bounded, no per-connection cardinality.
 * Per-CPU: plain increments instead of atomics on a line both CPUs write; the helper sums. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, FP_DEST_ENTRIES);
	__type(key, struct fp_dest_key);
	__type(value, struct fp_dest_stats);
} dest_stats SEC(".maps");

/* Connection events, separate from the XDP flow events so one cannot starve the other. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, FP_CONN_EVENTS_BYTES);
} conn_events SEC(".maps");

/* service id -> packets/bytes/flows steered by xdp_lb (client -> backend direction). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct fp_lb_stats);
} svc_stats SEC(".maps");

/* backend id -> the same; zeroed by TypeScript when an id is handed out again. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fp_lb_stats);
} be_stats SEC(".maps");

/* The proxy's event loop and GC, from raw syscall tracepoints and uprobes (runtime_probes). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_runtime);
} rt_state SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += n;
}

static __always_inline struct fp_config *get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&config, &zero);
}

#endif
