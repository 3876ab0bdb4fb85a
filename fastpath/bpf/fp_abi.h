/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pilotfish fast path ABI: every struct and constant shared by the BPF programs,
 * the C loader (native/) and the TypeScript encoder (src/abi.ts). Change a field
 * here and test/abi.test.ts fails until src/abi.ts agrees.
 *
 * Conventions: addresses are 16 bytes in network order (IPv4 in the first 4,
 * the rest zero); ports are network order; every field is naturally aligned and
 * padding is explicit, so the layout is the same for clang -target bpf and gcc.
 */
#ifndef PILOTFISH_FP_ABI_H
#define PILOTFISH_FP_ABI_H

#include <linux/types.h>

#define FP_ABI_VERSION 1

#define FP_MAX_SERVICES 32
#define FP_MAX_BACKENDS 4096
#define FP_MAGLEV_MAX 65537 /* largest table (Envoy's default size, prime) */
#define FP_FLOW_ENTRIES 65536
#define FP_ORIG_DST_ENTRIES 16384
#define FP_SOCK_ENTRIES 16384
#define FP_XSK_ENTRIES 64
#define FP_EVENTS_BYTES (256 * 1024)

#define FP_FAMILY_V4 4
#define FP_FAMILY_V6 6

/* fp_service.flags */
#define FP_SVC_F_USERSPACE 0x1 /* new and known flows go to the AF_XDP socket */

/* fp_config.flags */
#define FP_CFG_F_FIB 0x1        /* forward rewritten packets by FIB lookup + redirect */
#define FP_CFG_F_EVENTS 0x2     /* emit flow events into the ring buffer */
#define FP_CFG_F_INTERCEPT 0x4  /* cgroup connect4/6 interception is on */
#define FP_CFG_F_SOCKMAP 0x8    /* sockops/sk_msg short-cut is on */

/* fp_event.type */
#define FP_EV_FLOW_NEW 1
#define FP_EV_CONNECT_REDIRECT 2

/* An address and port: service VIPs, backends, original destinations. */
struct fp_sockaddr {
	__u8 addr[16];
	__u16 port;   /* network order */
	__u8 family;  /* FP_FAMILY_V4 / FP_FAMILY_V6 */
	__u8 proto;   /* IPPROTO_TCP / IPPROTO_UDP (0 where irrelevant) */
};

/* Value of the services map (key: struct fp_sockaddr of the VIP). */
struct fp_service {
	__u32 id;           /* row of the maglev map */
	__u32 table_size;   /* prime <= FP_MAGLEV_MAX */
	__u32 flags;        /* FP_SVC_F_* */
	__u32 backend_count;
};

/* A 5-tuple as seen on the wire; also the sockhash key (proto = 0 there). */
struct fp_flow_key {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport; /* network order */
	__u16 dport; /* network order */
	__u8 proto;
	__u8 family;
	__u16 pad;
};

/* Value of the flows map: the backend a client flow is pinned to. */
struct fp_flow {
	struct fp_sockaddr backend;
	__u32 backend_id;
	__u32 service_id;
	__u32 pad;
	__u64 created_ns;
};

/* Global knobs, one entry in the config array map. */
struct fp_config {
	__u32 flags;          /* FP_CFG_F_* */
	__u16 outbound_port;  /* network order: where connect4/6 send intercepted connections */
	__u16 pad;
	__u8 outbound_addr4[4];
	__u8 outbound_addr6[16];
	__u32 reserved;
};

/* Ring buffer record. */
struct fp_event {
	__u64 ts_ns;
	struct fp_flow_key key;
	__u32 type;        /* FP_EV_* */
	__u32 backend_id;
	__u32 service_id;
	__u32 pad;
};

/* Per-CPU counters: index into the counters map. Order is ABI. */
enum fp_counter {
	FP_CNT_RX_PACKETS = 0,
	FP_CNT_RX_BYTES,
	FP_CNT_TX_PACKETS,       /* XDP_TX */
	FP_CNT_REDIRECT_PACKETS, /* XDP_REDIRECT to another interface */
	FP_CNT_XSK_PACKETS,      /* XDP_REDIRECT to an AF_XDP socket */
	FP_CNT_PASS_PACKETS,
	FP_CNT_FWD_BYTES,        /* bytes of packets sent by TX/REDIRECT */
	FP_CNT_DROP_NO_BACKEND,
	FP_CNT_DROP_FAMILY,      /* backend of the other address family */
	FP_CNT_PASS_TRUNCATED,
	FP_CNT_PASS_FRAGMENT,
	FP_CNT_PASS_IP_OPTIONS,
	FP_CNT_PASS_OTHER_PROTO,
	FP_CNT_PASS_NO_SERVICE,
	FP_CNT_PASS_FIB_MISS,    /* rewritten, but the kernel stack forwards it */
	FP_CNT_FLOW_NEW,
	FP_CNT_FLOW_HIT,
	FP_CNT_REVERSE_NAT,
	FP_CNT_CONNECT_REDIRECT,
	FP_CNT_SOCKMAP_ADD,
	FP_CNT_SOCKMAP_REDIRECT,
	FP_CNT_EVENTS_LOST,
	FP_CNT_ORIG_DST_SOCKOPT, /* SO_ORIGINAL_DST answered by cgroup/getsockopt */
	FP_CNT__MAX
};

#endif
