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
#define FP_CONN_ENTRIES 65536        /* live observed sockets (LRU: a lost close cannot leak) */
#define FP_DEST_ENTRIES 4096         /* per-destination aggregates (LRU) */
#define FP_CONN_EVENTS_BYTES (256 * 1024)

#define FP_FAMILY_V4 4
#define FP_FAMILY_V6 6

/* fp_service.flags */
#define FP_SVC_F_USERSPACE 0x1 /* new and known flows go to the AF_XDP socket */

/* fp_config.flags */
#define FP_CFG_F_FIB 0x1        /* forward rewritten packets by FIB lookup + redirect */
#define FP_CFG_F_EVENTS 0x2     /* emit flow events into the ring buffer */
#define FP_CFG_F_INTERCEPT 0x4  /* cgroup connect4/6 interception is on */
#define FP_CFG_F_SOCKMAP 0x8    /* sockops/sk_msg short-cut is on */
#define FP_CFG_F_OBSERVE 0x10   /* connection telemetry for the observed cgroup */
#define FP_CFG_F_CONN_EVENTS 0x20 /* ... with per-connection events in conn_events */

/* fp_event.type */
#define FP_EV_FLOW_NEW 1
#define FP_EV_CONNECT_REDIRECT 2
/* fp_conn_event.type */
#define FP_EV_CONN_OPEN 3   /* TCP established (connect or accept) */
#define FP_EV_CONN_CLOSE 4  /* TCP closed (or failed to connect), with outcome and totals */
#define FP_EV_UDP_CONNECT 5 /* connect() of a UDP socket (resolvers do this) */

/* fp_conn_event.dir, fp_dest_key.dir */
#define FP_DIR_OUTBOUND 1
#define FP_DIR_INBOUND 2

/* fp_conn_event.outcome: from sk_err when the socket reached TCP_CLOSE */
#define FP_OUT_NONE 0     /* still open (open events) */
#define FP_OUT_OK 1       /* closed without an error */
#define FP_OUT_REFUSED 2  /* RST in answer to our SYN (ECONNREFUSED) */
#define FP_OUT_RESET 3    /* RST on an established connection (ECONNRESET / EPIPE) */
#define FP_OUT_TIMEOUT 4  /* retransmissions exhausted (ETIMEDOUT) */
#define FP_OUT_ERROR 5    /* another error (EHOSTUNREACH from ICMP, ...) */
#define FP_OUT_ABORTED 6  /* closed by the application before it connected */

/* fp_conn.flags, fp_conn_event.flags */
#define FP_CONN_F_PROXY 0x1     /* opened by one of pilotfish's own processes */
#define FP_CONN_F_REDIRECTED 0x2 /* connect4/6 sent it to the proxy: orig is where it meant to go */

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

/* Value of the conns map (key: socket cookie): what connect() knew, for the sockops callbacks. */
struct fp_conn {
	struct fp_sockaddr orig; /* destination the application asked for (family 0: unknown) */
	__u32 tgid;              /* 0 for accepted sockets (accept runs in softirq) */
	__u64 start_ns;
	char comm[16];
	__u8 dir;                /* FP_DIR_* */
	__u8 flags;              /* FP_CONN_F_* */
	__u16 pad;
	__u32 pad2;
};

/* Ring buffer record of conn_events. */
struct fp_conn_event {
	__u64 ts_ns;
	__u64 duration_ns;       /* close: since connect()/accept */
	__u64 bytes_sent;        /* bytes_acked */
	__u64 bytes_received;
	__u64 cookie;
	struct fp_flow_key key;  /* local -> remote as the socket sees it */
	struct fp_sockaddr orig; /* what connect() asked for (family 0: not seen) */
	__u32 tgid;
	char comm[16];
	__u32 srtt_us;
	__u32 retrans;           /* total_retrans */
	__u32 type;              /* FP_EV_CONN_* / FP_EV_UDP_CONNECT */
	__u8 dir;
	__u8 outcome;            /* FP_OUT_* */
	__u8 flags;              /* FP_CONN_F_* */
	__u8 old_state;          /* TCP state before CLOSE (SYN_SENT = 2: never connected) */
	__u32 err;               /* sk_err at close */
	__u32 pad;
};

/* Key of dest_stats: a destination (outbound: where the application meant to go) or a local service port (inbound). */
struct fp_dest_key {
	struct fp_sockaddr addr;
	__u8 dir;
	__u8 pad[3];
};

/* Value of dest_stats: bounded per-destination aggregates that TypeScript folds into per-service metrics. */
struct fp_dest_stats {
	__u64 opened;       /* connect() issued (outbound) / accepted (inbound) */
	__u64 established;
	__u64 closed_ok;
	__u64 refused;
	__u64 reset;
	__u64 timeout;
	__u64 other_err;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 retransmits;
	__u64 srtt_sum_us;  /* over closed connections */
	__u64 srtt_samples;
	__u64 udp_connects;
	__u64 udp_datagrams; /* unconnected sendmsg */
};

/* Value of svc_stats / be_stats (per-CPU arrays by service id / backend id): XDP steering per service and backend. */
struct fp_lb_stats {
	__u64 packets;
	__u64 bytes;
	__u64 flows;
};

#define FP_RT_HIST 16 /* busy-time buckets: [0, 64us), [64us, 128us), ... doubling, the last open-ended */

/*
 * The proxy's own event loop seen from outside (rt_state, one entry): its main thread
 * returning from epoll_pwait/epoll_wait starts an iteration, entering it again ends
 * one; the time in between is the loop's busy time. V8's Heap::CollectGarbage entry and
 * return (uprobes) bracket GC pauses on that thread. User space writes tid, the syscall
 * numbers and stall_ns; the programs write the rest.
 */
struct fp_runtime {
	__u32 tid;            /* the proxy's main thread (= its pid); 0: probes idle */
	__u32 in_poll;        /* inside epoll now */
	__u32 nr_poll[3];     /* epoll_wait, epoll_pwait, epoll_pwait2 on this architecture */
	__u32 in_gc;
	__u64 stall_ns;       /* an iteration busier than this is a stall */
	__u64 poll_enter_ns;
	__u64 poll_exit_ns;   /* last return from epoll: busy since then while !in_poll */
	__u64 iterations;
	__u64 busy_ns;
	__u64 busy_max_ns;
	__u64 stalls;
	__u64 gc_enter_ns;
	__u64 gcs;
	__u64 gc_ns;
	__u64 gc_max_ns;
	__u64 hist[FP_RT_HIST];
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
	FP_CNT_CONN_EVENTS,      /* connection events written to conn_events */
	FP_CNT_CONN_EVENTS_LOST, /* ... and those dropped because the ring was full */
	FP_CNT_CONN_UNTRACKED,   /* sockops saw a socket without state (started before attach, LRU eviction) */
	FP_CNT__MAX
};

#endif
