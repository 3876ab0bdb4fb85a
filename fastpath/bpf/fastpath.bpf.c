/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pilotfish fast path, kernel side. One object, one program per attach point:
 *   xdp_lb     ingress steering: L4 passthrough services NATed to a Maglev-chosen
 *              backend (and replies translated back), user-space flows to AF_XDP,
 *              everything else to the stack untouched
 *   xdp_pass   for veth peers: native XDP_REDIRECT into a veth needs XDP on the peer
 *   connect4/6 sidecar interception without iptables (original destination kept)
 *   getsockopt answers SO_ORIGINAL_DST for those connections, as conntrack does for REDIRECT
 *   sockops / sk_msg   local socket short-cut through a sockhash
 *   observation (same connect4/6 + sockops, and sendmsg4/6): every TCP connect, accept
 *              and close of the observed cgroup with its outcome, bytes, retransmits and
 *              smoothed RTT, UDP connects and datagrams; per-destination aggregates in
 *              dest_stats, per-connection events in conn_events (see observe_* below)
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/socket.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "fp_abi.h"
#include "maps.h"
#include "parsing.h"
#include "csum.h"
#include "hash.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
#define SOCK_STREAM_ 1

char LICENSE[] SEC("license") = "GPL";

/* ------------------------------------------------------------------ XDP */

struct pkt {
	struct fp_flow_key key;
	struct ethhdr *eth;
	struct iphdr *ip4;
	struct ipv6hdr *ip6;
	__u16 *l4_csum; /* NULL: no checksum to fix (UDP over IPv4 with csum 0) */
	__u16 *sport;
	__u16 *dport;
};

static __always_inline int pass(__u32 reason)
{
	count(reason, 1);
	count(FP_CNT_PASS_PACKETS, 1);
	return XDP_PASS;
}

/* Rewrite the destination (to_dst) or source address and port, fixing checksums. */
static __always_inline void rewrite(struct pkt *p, const struct fp_sockaddr *to, int to_dst)
{
	__u16 *port = to_dst ? p->dport : p->sport;

	if (p->ip4) {
		__u16 oldw[2], neww[2];
		void *a = to_dst ? (void *)&p->ip4->daddr : (void *)&p->ip4->saddr;

		__builtin_memcpy(oldw, a, 4);
		__builtin_memcpy(neww, to->addr, 4);
		csum_replace_words(&p->ip4->check, oldw, neww, 2);
		if (p->l4_csum) {
			csum_replace_words(p->l4_csum, oldw, neww, 2);
			csum_replace16(p->l4_csum, *port, to->port);
			if (*p->l4_csum == 0 && p->key.proto == IPPROTO_UDP)
				*p->l4_csum = 0xffff;
		}
		__builtin_memcpy(a, to->addr, 4);
	} else if (p->ip6) {
		__u16 oldw[8], neww[8];
		void *a = to_dst ? (void *)&p->ip6->daddr : (void *)&p->ip6->saddr;

		__builtin_memcpy(oldw, a, 16);
		__builtin_memcpy(neww, to->addr, 16);
		if (p->l4_csum) {
			csum_replace_words(p->l4_csum, oldw, neww, 8);
			csum_replace16(p->l4_csum, *port, to->port);
			if (*p->l4_csum == 0 && p->key.proto == IPPROTO_UDP)
				*p->l4_csum = 0xffff;
		}
		__builtin_memcpy(a, to->addr, 16);
	}
	*port = to->port;
}

/* Send a rewritten packet on its way: FIB lookup and redirect, or bounce it back (one-arm). */
static __always_inline int forward(struct xdp_md *ctx, struct pkt *p, struct fp_config *cfg)
{
	__u64 len = (__u64)((long)ctx->data_end - (long)ctx->data);

	if (cfg && (cfg->flags & FP_CFG_F_FIB)) {
		struct bpf_fib_lookup fib = {};
		long rc;

		fib.ifindex = ctx->ingress_ifindex;
		fib.l4_protocol = p->key.proto;
		fib.sport = *p->sport;
		fib.dport = *p->dport;
		if (p->ip4) {
			fib.family = AF_INET;
			fib.tos = p->ip4->tos;
			fib.tot_len = bpf_ntohs(p->ip4->tot_len);
			fib.ipv4_src = p->ip4->saddr;
			fib.ipv4_dst = p->ip4->daddr;
		} else if (p->ip6) {
			fib.family = AF_INET6;
			fib.tot_len = bpf_ntohs(p->ip6->payload_len);
			__builtin_memcpy(fib.ipv6_src, &p->ip6->saddr, 16);
			__builtin_memcpy(fib.ipv6_dst, &p->ip6->daddr, 16);
		}
		rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
		if (rc != BPF_FIB_LKUP_RET_SUCCESS)
			return pass(FP_CNT_PASS_FIB_MISS); /* the stack forwards it, and learns the neighbour */
		__builtin_memcpy(p->eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(p->eth->h_source, fib.smac, ETH_ALEN);
		count(FP_CNT_FWD_BYTES, len);
		if (fib.ifindex == ctx->ingress_ifindex) {
			count(FP_CNT_TX_PACKETS, 1);
			return XDP_TX;
		}
		count(FP_CNT_REDIRECT_PACKETS, 1);
		return bpf_redirect(fib.ifindex, 0);
	}

	/* one-arm: the router that sent it gets it back, addressed to the backend */
	{
		__u8 tmp[ETH_ALEN];
		__builtin_memcpy(tmp, p->eth->h_source, ETH_ALEN);
		__builtin_memcpy(p->eth->h_source, p->eth->h_dest, ETH_ALEN);
		__builtin_memcpy(p->eth->h_dest, tmp, ETH_ALEN);
	}
	count(FP_CNT_FWD_BYTES, len);
	count(FP_CNT_TX_PACKETS, 1);
	return XDP_TX;
}

static __always_inline void emit(struct fp_config *cfg, __u32 type, const struct fp_flow_key *key,
				 __u32 backend_id, __u32 service_id)
{
	struct fp_event *ev;

	if (!cfg || !(cfg->flags & FP_CFG_F_EVENTS))
		return;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count(FP_CNT_EVENTS_LOST, 1);
		return;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(&ev->key, key, sizeof(*key));
	ev->type = type;
	ev->backend_id = backend_id;
	ev->service_id = service_id;
	ev->pad = 0;
	bpf_ringbuf_submit(ev, 0);
}

/* Parse up to L4. Returns -1 when parsing succeeded, else the counter to pass with. */
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	__u8 l4;

	p->eth = parse_eth(&c);
	if (!p->eth)
		return FP_CNT_PASS_TRUNCATED;
	if (p->eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = parse_ip4(&c);
		if (!ip)
			return FP_CNT_PASS_TRUNCATED;
		if (ip->ihl != 5)
			return ip->ihl < 5 ? FP_CNT_PASS_TRUNCATED : FP_CNT_PASS_IP_OPTIONS;
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return FP_CNT_PASS_FRAGMENT;
		p->ip4 = ip;
		p->key.family = FP_FAMILY_V4;
		__builtin_memcpy(p->key.src, &ip->saddr, 4);
		__builtin_memcpy(p->key.dst, &ip->daddr, 4);
		l4 = ip->protocol;
	} else if (p->eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = parse_ip6(&c);
		if (!ip6)
			return FP_CNT_PASS_TRUNCATED;
		if (ip6->nexthdr == IPPROTO_FRAGMENT)
			return FP_CNT_PASS_FRAGMENT;
		p->ip6 = ip6;
		p->key.family = FP_FAMILY_V6;
		__builtin_memcpy(p->key.src, &ip6->saddr, 16);
		__builtin_memcpy(p->key.dst, &ip6->daddr, 16);
		l4 = ip6->nexthdr; /* extension headers land in "other protocol" */
	} else {
		return FP_CNT_PASS_OTHER_PROTO;
	}

	if (l4 == IPPROTO_TCP) {
		struct tcphdr *th = parse_tcp(&c);
		if (!th)
			return FP_CNT_PASS_TRUNCATED;
		p->l4_csum = &th->check;
		p->sport = &th->source;
		p->dport = &th->dest;
	} else if (l4 == IPPROTO_UDP) {
		struct udphdr *uh = parse_udp(&c);
		if (!uh)
			return FP_CNT_PASS_TRUNCATED;
		p->l4_csum = (p->ip4 && uh->check == 0) ? NULL : &uh->check;
		p->sport = &uh->source;
		p->dport = &uh->dest;
	} else {
		return FP_CNT_PASS_OTHER_PROTO;
	}
	p->key.proto = l4;
	p->key.sport = *p->sport;
	p->key.dport = *p->dport;
	return -1;
}

/* Per-service and per-backend steering counters (client -> backend direction). */
static __always_inline void lb_count(__u32 sid, __u32 bid, __u64 len, __u64 new_flow)
{
	struct fp_lb_stats *st = bpf_map_lookup_elem(&svc_stats, &sid);
	if (st) {
		st->packets++;
		st->bytes += len;
		st->flows += new_flow;
	}
	st = bpf_map_lookup_elem(&be_stats, &bid);
	if (st) {
		st->packets++;
		st->bytes += len;
		st->flows += new_flow;
	}
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	struct pkt p = {};
	struct fp_config *cfg = get_config();
	struct fp_sockaddr vip = {}, *rev;
	struct fp_service *svc;
	struct fp_flow *flow;
	int reason;

	count(FP_CNT_RX_PACKETS, 1);
	count(FP_CNT_RX_BYTES, (__u64)((long)ctx->data_end - (long)ctx->data));

	reason = parse(ctx, &p);
	if (reason >= 0)
		return pass(reason);

	/* a backend's reply to a flow we steered: give it the VIP back */
	rev = bpf_map_lookup_elem(&rev_flows, &p.key);
	if (rev) {
		count(FP_CNT_REVERSE_NAT, 1);
		rewrite(&p, rev, 0);
		return forward(ctx, &p, cfg);
	}

	__builtin_memcpy(vip.addr, p.key.dst, 16);
	vip.port = p.key.dport;
	vip.family = p.key.family;
	vip.proto = p.key.proto;
	svc = bpf_map_lookup_elem(&services, &vip);
	if (!svc)
		return pass(FP_CNT_PASS_NO_SERVICE);

	if (svc->flags & FP_SVC_F_USERSPACE) {
		int act = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
		if (act == XDP_REDIRECT)
			count(FP_CNT_XSK_PACKETS, 1);
		else
			count(FP_CNT_PASS_PACKETS, 1);
		return act;
	}

	flow = bpf_map_lookup_elem(&flows, &p.key);
	if (flow) {
		count(FP_CNT_FLOW_HIT, 1);
		lb_count(flow->service_id, flow->backend_id, (__u64)((long)ctx->data_end - (long)ctx->data), 0);
		rewrite(&p, &flow->backend, 1);
		return forward(ctx, &p, cfg);
	}

	{
		struct fp_flow nf = {};
		struct fp_flow_key rk = {};
		struct fp_sockaddr *be;
		__u32 idx, bid, *slot, tsize = svc->table_size;

		if (tsize == 0 || tsize > FP_MAGLEV_MAX || svc->id >= FP_MAX_SERVICES) {
			count(FP_CNT_DROP_NO_BACKEND, 1);
			return XDP_DROP;
		}
		idx = svc->id * FP_MAGLEV_MAX + flow_hash(&p.key) % tsize;
		slot = bpf_map_lookup_elem(&maglev, &idx);
		bid = slot ? *slot : 0;
		be = bid ? bpf_map_lookup_elem(&backends, &bid) : NULL;
		if (!be) {
			count(FP_CNT_DROP_NO_BACKEND, 1);
			return XDP_DROP;
		}
		if (be->family != p.key.family) {
			count(FP_CNT_DROP_FAMILY, 1);
			return XDP_DROP;
		}
		__builtin_memcpy(&nf.backend, be, sizeof(nf.backend));
		nf.backend_id = bid;
		nf.service_id = svc->id;
		nf.created_ns = bpf_ktime_get_ns();
		bpf_map_update_elem(&flows, &p.key, &nf, BPF_ANY);

		__builtin_memcpy(rk.src, be->addr, 16);
		__builtin_memcpy(rk.dst, p.key.src, 16);
		rk.sport = be->port;
		rk.dport = p.key.sport;
		rk.proto = p.key.proto;
		rk.family = p.key.family;
		bpf_map_update_elem(&rev_flows, &rk, &vip, BPF_ANY);

		count(FP_CNT_FLOW_NEW, 1);
		lb_count(svc->id, bid, (__u64)((long)ctx->data_end - (long)ctx->data), 1);
		emit(cfg, FP_EV_FLOW_NEW, &p.key, bid, svc->id);
		rewrite(&p, &nf.backend, 1);
		return forward(ctx, &p, cfg);
	}
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* ------------------------------------------------------- interception */

static __always_inline int is_proxy(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	return bpf_map_lookup_elem(&proxy_pids, &tgid) != NULL;
}

static __always_inline int redirect_connect(struct bpf_sock_addr *ctx, struct fp_config *cfg,
					    struct fp_sockaddr *orig)
{
	__u64 cookie;

	if (bpf_map_lookup_elem(&skip_ports, &orig->port))
		return 0;
	if (orig->port == cfg->outbound_port)
		return 0; /* already aimed at the proxy */
	cookie = bpf_get_socket_cookie(ctx);
	bpf_map_update_elem(&cookie_dst, &cookie, orig, BPF_ANY);
	count(FP_CNT_CONNECT_REDIRECT, 1);
	return 1;
}

/* ---------------------------------------------------------- observation */

#define SOCK_DGRAM_ 2
#define TCP_SYN_SENT_ 2
#define TCP_FIN_WAIT2_ 5
#define TCP_TIME_WAIT_ 6
#define TCP_CLOSE_ 7
#define TCP_CLOSE_WAIT_ 8
#define TCP_LAST_ACK_ 9
#define TCP_CLOSING_ 11
#define EPIPE_ 32
#define ECONNRESET_ 104
#define ETIMEDOUT_ 110
#define ECONNREFUSED_ 111

/* The one field of struct sock we read; CO-RE finds its offset in this kernel's BTF. */
struct sock___fp {
	int sk_err;
} __attribute__((preserve_access_index));

/* Find-or-create a destination's aggregates (an LRU map: a flood of destinations evicts the coldest). */
static __always_inline struct fp_dest_stats *dest_entry(const struct fp_dest_key *k)
{
	struct fp_dest_stats *st = bpf_map_lookup_elem(&dest_stats, k);
	if (st)
		return st;
	{
		struct fp_dest_stats zero = {};
		bpf_map_update_elem(&dest_stats, k, &zero, BPF_NOEXIST);
	}
	return bpf_map_lookup_elem(&dest_stats, k);
}

/*
 * Waking the reader for every record costs more than writing it; the helper polls at least
 * every 100 ms anyway, so wake it only once a quarter of the ring is waiting.
 */
static __always_inline void conn_submit(struct fp_conn_event *ev)
{
	__u64 pending = bpf_ringbuf_query(&conn_events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(ev, pending > FP_CONN_EVENTS_BYTES / 4 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline struct fp_conn_event *conn_event(struct fp_config *cfg)
{
	struct fp_conn_event *ev;

	if (!(cfg->flags & FP_CFG_F_CONN_EVENTS))
		return NULL;
	ev = bpf_ringbuf_reserve(&conn_events, sizeof(*ev), 0);
	if (!ev) {
		count(FP_CNT_CONN_EVENTS_LOST, 1);
		return NULL;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	count(FP_CNT_CONN_EVENTS, 1);
	return ev;
}

/*
 * connect() of an observed process: remember what it asked for, who asked (connect
 * runs in the caller's context, the sockops callbacks mostly do not), and when,
 * under the socket cookie; a UDP connect is counted and reported at once.
 */
static __always_inline void observe_connect(struct bpf_sock_addr *ctx, struct fp_config *cfg,
					    const struct fp_sockaddr *dst, __u32 type, __u8 flags)
{
	struct fp_dest_key dk = {};

	if (type == SOCK_STREAM_) {
		struct fp_conn c = {};
		__u64 cookie = bpf_get_socket_cookie(ctx);
		__builtin_memcpy(&c.orig, dst, sizeof(c.orig));
		c.tgid = bpf_get_current_pid_tgid() >> 32;
		c.start_ns = bpf_ktime_get_ns();
		bpf_get_current_comm(c.comm, sizeof(c.comm));
		c.dir = FP_DIR_OUTBOUND;
		c.flags = flags;
		bpf_map_update_elem(&conns, &cookie, &c, BPF_ANY);
		return;
	}
	if (type != SOCK_DGRAM_)
		return;
	__builtin_memcpy(&dk.addr, dst, sizeof(dk.addr));
	dk.addr.proto = IPPROTO_UDP;
	dk.dir = FP_DIR_OUTBOUND;
	{
		struct fp_dest_stats *st = dest_entry(&dk);
		struct fp_conn_event *ev;
		if (st)
			st->udp_connects += 1;
		ev = conn_event(cfg);
		if (ev) {
			ev->ts_ns = bpf_ktime_get_ns();
			ev->cookie = bpf_get_socket_cookie(ctx);
			__builtin_memcpy(ev->key.dst, dst->addr, 16);
			ev->key.dport = dst->port;
			ev->key.family = dst->family;
			ev->key.proto = IPPROTO_UDP;
			__builtin_memcpy(&ev->orig, &dk.addr, sizeof(ev->orig));
			ev->tgid = bpf_get_current_pid_tgid() >> 32;
			bpf_get_current_comm(ev->comm, sizeof(ev->comm));
			ev->type = FP_EV_UDP_CONNECT;
			ev->dir = FP_DIR_OUTBOUND;
			ev->flags = flags;
			conn_submit(ev);
		}
	}
}

/* An unconnected UDP datagram (sendto): counted per destination, no event (that would be per packet). */
static __always_inline void observe_sendmsg(const struct fp_sockaddr *dst)
{
	struct fp_dest_key dk = {};
	struct fp_dest_stats *st;

	__builtin_memcpy(&dk.addr, dst, sizeof(dk.addr));
	dk.dir = FP_DIR_OUTBOUND;
	st = dest_entry(&dk);
	if (st)
		st->udp_datagrams += 1;
}

SEC("cgroup/sendmsg4")
int fp_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct fp_config *cfg = get_config();
	struct fp_sockaddr d = {};
	__u32 ip = ctx->user_ip4;

	if (!cfg || !(cfg->flags & FP_CFG_F_OBSERVE) || ctx->type != SOCK_DGRAM_)
		return 1;
	__builtin_memcpy(d.addr, &ip, 4);
	d.port = (__u16)ctx->user_port;
	d.family = FP_FAMILY_V4;
	d.proto = IPPROTO_UDP;
	observe_sendmsg(&d);
	return 1;
}

SEC("cgroup/sendmsg6")
int fp_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct fp_config *cfg = get_config();
	struct fp_sockaddr d = {};
	__u32 ip[4];

	if (!cfg || !(cfg->flags & FP_CFG_F_OBSERVE) || ctx->type != SOCK_DGRAM_)
		return 1;
	ip[0] = ctx->user_ip6[0];
	ip[1] = ctx->user_ip6[1];
	ip[2] = ctx->user_ip6[2];
	ip[3] = ctx->user_ip6[3];
	if (ip[0] == 0 && ip[1] == 0 && ip[2] == bpf_htonl(0xffff)) {
		__builtin_memcpy(d.addr, &ip[3], 4);
		d.family = FP_FAMILY_V4;
	} else {
		__builtin_memcpy(d.addr, ip, 16);
		d.family = FP_FAMILY_V6;
	}
	d.port = (__u16)ctx->user_port;
	d.proto = IPPROTO_UDP;
	observe_sendmsg(&d);
	return 1;
}

SEC("cgroup/connect4")
int fp_connect4(struct bpf_sock_addr *ctx)
{
	struct fp_config *cfg = get_config();
	struct fp_sockaddr orig = {};
	__u32 ip = ctx->user_ip4;
	__u8 flags = 0;

	if (!cfg || !(cfg->flags & (FP_CFG_F_INTERCEPT | FP_CFG_F_OBSERVE)))
		return 1;
	__builtin_memcpy(orig.addr, &ip, 4);
	orig.port = (__u16)ctx->user_port;
	orig.family = FP_FAMILY_V4;
	orig.proto = ctx->type == SOCK_STREAM_ ? IPPROTO_TCP : IPPROTO_UDP;
	if (is_proxy())
		flags |= FP_CONN_F_PROXY;
	if ((cfg->flags & FP_CFG_F_INTERCEPT) && ctx->type == SOCK_STREAM_ && (bpf_ntohl(ip) >> 24) != 127 &&
	    !(flags & FP_CONN_F_PROXY) && redirect_connect(ctx, cfg, &orig)) {
		__u32 to;
		__builtin_memcpy(&to, cfg->outbound_addr4, 4);
		ctx->user_ip4 = to;
		ctx->user_port = cfg->outbound_port;
		flags |= FP_CONN_F_REDIRECTED;
	}
	if (cfg->flags & FP_CFG_F_OBSERVE)
		observe_connect(ctx, cfg, &orig, ctx->type, flags);
	return 1;
}

SEC("cgroup/connect6")
int fp_connect6(struct bpf_sock_addr *ctx)
{
	struct fp_config *cfg = get_config();
	struct fp_sockaddr orig = {};
	__u32 ip[4];
	__u8 flags = 0;
	int mapped, lo;

	if (!cfg || !(cfg->flags & (FP_CFG_F_INTERCEPT | FP_CFG_F_OBSERVE)))
		return 1;
	ip[0] = ctx->user_ip6[0];
	ip[1] = ctx->user_ip6[1];
	ip[2] = ctx->user_ip6[2];
	ip[3] = ctx->user_ip6[3];
	lo = (ip[0] | ip[1] | ip[2]) == 0 && ip[3] == bpf_htonl(1); /* ::1 */
	mapped = ip[0] == 0 && ip[1] == 0 && ip[2] == bpf_htonl(0xffff);
	if (mapped) {
		/* observed as the IPv4 destination it is; connect4 rules do not apply here, so no redirect */
		__builtin_memcpy(orig.addr, &ip[3], 4);
		orig.family = FP_FAMILY_V4;
	} else {
		__builtin_memcpy(orig.addr, ip, 16);
		orig.family = FP_FAMILY_V6;
	}
	orig.port = (__u16)ctx->user_port;
	orig.proto = ctx->type == SOCK_STREAM_ ? IPPROTO_TCP : IPPROTO_UDP;
	if (is_proxy())
		flags |= FP_CONN_F_PROXY;
	if ((cfg->flags & FP_CFG_F_INTERCEPT) && ctx->type == SOCK_STREAM_ && !lo && !mapped &&
	    !(flags & FP_CONN_F_PROXY) && redirect_connect(ctx, cfg, &orig)) {
		__u32 to[4];
		__builtin_memcpy(to, cfg->outbound_addr6, 16);
		ctx->user_ip6[0] = to[0];
		ctx->user_ip6[1] = to[1];
		ctx->user_ip6[2] = to[2];
		ctx->user_ip6[3] = to[3];
		ctx->user_port = cfg->outbound_port;
		flags |= FP_CONN_F_REDIRECTED;
	}
	if (cfg->flags & FP_CFG_F_OBSERVE)
		observe_connect(ctx, cfg, &orig, ctx->type, flags);
	return 1;
}

/* The kernel hands remote_port in network order, shifted into the upper half on some paths. */
static __always_inline __u16 remote_port(__u32 raw)
{
	return raw > 0xffff ? (__u16)(raw >> 16) : (__u16)raw;
}

/* Fill one side of a key; v4-mapped v6 is folded to v4 so both ends of a dual-stack pair agree. */
static __always_inline void sock_addr(__u8 out[16], __u8 *family, __u32 fam, __u32 ip4, const __u32 ip6[4])
{
	__u32 w[4] = {};
	if (fam == AF_INET) {
		w[0] = ip4;
		*family = FP_FAMILY_V4;
	} else if (ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0xffff)) {
		w[0] = ip6[3];
		*family = FP_FAMILY_V4;
	} else {
		w[0] = ip6[0];
		w[1] = ip6[1];
		w[2] = ip6[2];
		w[3] = ip6[3];
		*family = FP_FAMILY_V6;
	}
	__builtin_memcpy(out, w, 16);
}

static __always_inline int is_loopback(const __u8 addr[16], __u8 family)
{
	__u32 w[4];
	__builtin_memcpy(w, addr, 16);
	if (family == FP_FAMILY_V4)
		return (bpf_ntohl(w[0]) >> 24) == 127;
	return (w[0] | w[1] | w[2]) == 0 && w[3] == bpf_htonl(1);
}

/* Where a connection's aggregates go: what the app asked for (outbound), or our own service port (inbound). */
static __always_inline void dest_key_of(struct fp_dest_key *dk, const struct fp_flow_key *key, const struct fp_conn *c)
{
	dk->dir = c->dir;
	if (c->dir == FP_DIR_OUTBOUND && c->orig.family) {
		__builtin_memcpy(&dk->addr, &c->orig, sizeof(dk->addr));
	} else if (c->dir == FP_DIR_OUTBOUND) {
		__builtin_memcpy(dk->addr.addr, key->dst, 16);
		dk->addr.port = key->dport;
		dk->addr.family = key->family;
	} else {
		__builtin_memcpy(dk->addr.addr, key->src, 16);
		dk->addr.port = key->sport;
		dk->addr.family = key->family;
	}
	dk->addr.proto = IPPROTO_TCP;
}

static __always_inline __u8 outcome_of(__u32 err, __u32 old_state)
{
	if (err == ECONNREFUSED_)
		return FP_OUT_REFUSED;
	if (err == ECONNRESET_ || err == EPIPE_)
		return FP_OUT_RESET;
	if (err == ETIMEDOUT_)
		return FP_OUT_TIMEOUT;
	if (err)
		return FP_OUT_ERROR;
	return old_state == TCP_SYN_SENT_ ? FP_OUT_ABORTED : FP_OUT_OK;
}

static __always_inline void fill_event(struct fp_conn_event *ev, __u32 type, __u64 cookie, const struct fp_flow_key *key,
				       const struct fp_conn *c)
{
	ev->ts_ns = bpf_ktime_get_ns();
	ev->cookie = cookie;
	__builtin_memcpy(&ev->key, key, sizeof(ev->key));
	ev->key.proto = IPPROTO_TCP;
	__builtin_memcpy(&ev->orig, &c->orig, sizeof(ev->orig));
	ev->tgid = c->tgid;
	__builtin_memcpy(ev->comm, c->comm, sizeof(ev->comm));
	ev->type = type;
	ev->dir = c->dir;
	ev->flags = c->flags;
}

#define OBSERVE_CB_FLAGS (BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RETRANS_CB_FLAG)

/*
 * Connection telemetry from the socket's own callbacks: they run only for sockets of
 * the cgroups this program is attached to (the pod), whatever process or softirq the
 * kernel is in. No per-packet work: connect, established, each retransmission, close.
 */
static __always_inline void observe_sockops(struct bpf_sock_ops *skops, struct fp_config *cfg, __u32 op,
					    const struct fp_flow_key *key)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct fp_conn *c = bpf_map_lookup_elem(&conns, &cookie);
	struct fp_dest_key dk = {};
	struct fp_dest_stats *st;
	struct fp_conn_event *ev;

	if (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		struct fp_conn nc = {};
		/* the proxy's side of an intercepted connection mirrors the app's: counted once, there */
		if ((cfg->flags & FP_CFG_F_INTERCEPT) && key->sport == cfg->outbound_port)
			return;
		nc.start_ns = bpf_ktime_get_ns();
		nc.dir = FP_DIR_INBOUND;
		bpf_map_update_elem(&conns, &cookie, &nc, BPF_ANY);
		c = bpf_map_lookup_elem(&conns, &cookie);
		if (!c)
			return;
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | OBSERVE_CB_FLAGS);
		dest_key_of(&dk, key, c);
		st = dest_entry(&dk);
		if (st) {
			st->opened += 1;
			st->established += 1;
		}
		ev = conn_event(cfg);
		if (ev) {
			fill_event(ev, FP_EV_CONN_OPEN, cookie, key, c);
			ev->srtt_us = skops->srtt_us >> 3;
			conn_submit(ev);
		}
		return;
	}
	if (op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		if (!c) {
			count(FP_CNT_CONN_UNTRACKED, 1);
			return;
		}
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | OBSERVE_CB_FLAGS);
		dest_key_of(&dk, key, c);
		st = dest_entry(&dk);
		if (st)
			st->opened += 1;
		return;
	}
	if (!c)
		return; /* not observed (no connect seen): nothing to say */
	dest_key_of(&dk, key, c);
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		st = dest_entry(&dk);
		if (st)
			st->established += 1;
		ev = conn_event(cfg);
		if (ev) {
			fill_event(ev, FP_EV_CONN_OPEN, cookie, key, c);
			ev->srtt_us = skops->srtt_us >> 3;
			conn_submit(ev);
		}
		return;
	}
	if (op == BPF_SOCK_OPS_RETRANS_CB) {
		st = dest_entry(&dk);
		if (st)
			st->retransmits += 1;
		return;
	}
	if (op == BPF_SOCK_OPS_STATE_CB && skops->args[1] == BPF_TCP_CLOSE) {
		__u32 err = 0, old = skops->args[0], srtt = skops->srtt_us >> 3;
		__u64 sent = skops->bytes_acked, recvd = skops->bytes_received;
		/*
		 * bytes_acked/bytes_received count sequence space: our SYN and FIN, the peer's FIN.
		 * Report payload, as an application (and Envoy's BYTES_SENT) counts it: the SYN
		 * was acked once connected; our FIN was acked, and the peer's received, in the
		 * states the socket closes from after a clean shutdown.
		 */
		if (sent && old != TCP_SYN_SENT_)
			sent--;
		if (sent && (old == TCP_FIN_WAIT2_ || old == TCP_TIME_WAIT_ || old == TCP_LAST_ACK_ || old == TCP_CLOSING_))
			sent--;
		if (recvd && (old == TCP_FIN_WAIT2_ || old == TCP_TIME_WAIT_ || old == TCP_CLOSE_WAIT_ || old == TCP_LAST_ACK_ ||
			      old == TCP_CLOSING_))
			recvd--;
		struct bpf_sock *sk = skops->sk;
		__u8 outcome;

		if (sk) {
			/* sk_err is set before tcp_done() moves the socket to CLOSE: it says why */
			struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
			if (tp)
				err = (__u32)((struct sock___fp *)tp)->sk_err;
		}
		outcome = outcome_of(err, old);
		st = dest_entry(&dk);
		if (st) {
			if (outcome == FP_OUT_OK || outcome == FP_OUT_ABORTED)
				st->closed_ok += 1;
			else if (outcome == FP_OUT_REFUSED)
				st->refused += 1;
			else if (outcome == FP_OUT_RESET)
				st->reset += 1;
			else if (outcome == FP_OUT_TIMEOUT)
				st->timeout += 1;
			else
				st->other_err += 1;
			st->bytes_sent += sent;
			st->bytes_received += recvd;
			if (old != TCP_SYN_SENT_ && srtt) {
				st->srtt_sum_us += srtt;
				st->srtt_samples += 1;
			}
		}
		ev = conn_event(cfg);
		if (ev) {
			fill_event(ev, FP_EV_CONN_CLOSE, cookie, key, c);
			ev->duration_ns = ev->ts_ns - c->start_ns;
			ev->bytes_sent = sent;
			ev->bytes_received = recvd;
			ev->srtt_us = srtt;
			ev->retrans = skops->total_retrans;
			ev->outcome = outcome;
			ev->old_state = (__u8)old;
			ev->err = err;
			conn_submit(ev);
		}
		bpf_map_delete_elem(&conns, &cookie);
	}
}

SEC("sockops")
int fp_sockops(struct bpf_sock_ops *skops)
{
	struct fp_config *cfg;
	struct fp_flow_key key = {};
	__u32 op = skops->op, l6[4], r6[4];
	__u8 rf;

	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB &&
	    op != BPF_SOCK_OPS_STATE_CB && op != BPF_SOCK_OPS_TCP_CONNECT_CB && op != BPF_SOCK_OPS_RETRANS_CB)
		return 1;
	/* the state callback fires on every transition; only the last one matters, so leave the others cheaply */
	if (op == BPF_SOCK_OPS_STATE_CB && skops->args[1] != BPF_TCP_CLOSE)
		return 1;
	if (skops->family != AF_INET && skops->family != AF_INET6)
		return 1;
	cfg = get_config();
	if (!cfg)
		return 1;
	l6[0] = skops->local_ip6[0];
	l6[1] = skops->local_ip6[1];
	l6[2] = skops->local_ip6[2];
	l6[3] = skops->local_ip6[3];
	r6[0] = skops->remote_ip6[0];
	r6[1] = skops->remote_ip6[1];
	r6[2] = skops->remote_ip6[2];
	r6[3] = skops->remote_ip6[3];
	sock_addr(key.src, &key.family, skops->family, skops->local_ip4, l6);
	sock_addr(key.dst, &rf, skops->family, skops->remote_ip4, r6);
	key.sport = bpf_htons((__u16)skops->local_port);
	key.dport = remote_port(skops->remote_port);

	if (cfg->flags & FP_CFG_F_OBSERVE)
		observe_sockops(skops, cfg, op, &key);

	if (op == BPF_SOCK_OPS_STATE_CB) {
		/*
		 * An intercepted app socket closed: forget its original destination, so that a
		 * later connection from the same address:port (not necessarily redirected) is not
		 * answered with it by cgroup/getsockopt. Only sockets that filed one asked for this
		 * callback. TCP_CLOSE comes after the proxy's side closed too (or on a reset), so
		 * the proxy has long read it.
		 */
		struct fp_sockaddr local = {};
		if (skops->args[1] != BPF_TCP_CLOSE)
			return 1;
		__builtin_memcpy(local.addr, key.src, 16);
		local.port = key.sport;
		local.family = key.family;
		local.proto = IPPROTO_TCP;
		bpf_map_delete_elem(&orig_dst, &local);
		return 1;
	}
	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;

	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && (cfg->flags & FP_CFG_F_INTERCEPT)) {
		__u64 cookie = bpf_get_socket_cookie(skops);
		struct fp_sockaddr *orig = bpf_map_lookup_elem(&cookie_dst, &cookie);
		if (orig) {
			struct fp_sockaddr local = {};
			__builtin_memcpy(local.addr, key.src, 16);
			local.port = key.sport;
			local.family = key.family;
			local.proto = IPPROTO_TCP;
			bpf_map_update_elem(&orig_dst, &local, orig, BPF_ANY);
			bpf_map_delete_elem(&cookie_dst, &cookie);
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
		}
	}

	if ((cfg->flags & FP_CFG_F_SOCKMAP) && is_loopback(key.src, key.family) &&
	    is_loopback(key.dst, key.family) &&
	    (bpf_map_lookup_elem(&sockmap_ports, &key.sport) || bpf_map_lookup_elem(&sockmap_ports, &key.dport))) {
		if (bpf_sock_hash_update(skops, &sock_pairs, &key, BPF_NOEXIST) == 0)
			count(FP_CNT_SOCKMAP_ADD, 1);
	}
	return 1;
}

SEC("sk_msg")
int fp_sk_msg(struct sk_msg_md *msg)
{
	struct fp_flow_key peer = {};
	__u32 l6[4], r6[4];
	__u8 f;

	l6[0] = msg->local_ip6[0];
	l6[1] = msg->local_ip6[1];
	l6[2] = msg->local_ip6[2];
	l6[3] = msg->local_ip6[3];
	r6[0] = msg->remote_ip6[0];
	r6[1] = msg->remote_ip6[1];
	r6[2] = msg->remote_ip6[2];
	r6[3] = msg->remote_ip6[3];
	/* the peer's key: its local side is our remote side */
	sock_addr(peer.src, &peer.family, msg->family, msg->remote_ip4, r6);
	sock_addr(peer.dst, &f, msg->family, msg->local_ip4, l6);
	peer.sport = remote_port(msg->remote_port);
	peer.dport = bpf_htons((__u16)msg->local_port);
	if (bpf_msg_redirect_hash(msg, &sock_pairs, &peer, BPF_F_INGRESS) == SK_PASS)
		count(FP_CNT_SOCKMAP_REDIRECT, 1);
	return SK_PASS;
}

/* ------------------------------------------------------------ getsockopt */

#define SOL_IP_ 0
#define SOL_IPV6_ 41
#define SO_ORIGINAL_DST_ 80 /* also IP6T_SO_ORIGINAL_DST */
#define ENOENT_ 2
#define ENOPROTOOPT_ 92
#define PAGE_SIZE_ 4096

/* struct sockaddr_in / sockaddr_in6 as user space reads them (no libc headers here). */
struct sockaddr_in_ {
	__u16 family;
	__u16 port;
	__u32 addr;
	__u8 zero[8];
};
struct sockaddr_in6_ {
	__u16 family;
	__u16 port;
	__u32 flowinfo;
	__u32 addr[4];
	__u32 scope_id;
};

/*
 * SO_ORIGINAL_DST for connections connect4/6 redirected: the same call the proxy makes
 * for iptables REDIRECT. Runs after the kernel's own answer and steps in only when
 * conntrack had none (ENOENT; ENOPROTOOPT when nf_conntrack is not loaded at all), so a
 * REDIRECTed connection keeps conntrack's answer. The accepted socket's peer is the app
 * socket's local address:port, the key sockops filed the original destination under.
 * Runs for getsockopt calls of processes whose *socket* is in the attached cgroup (an
 * accepted socket inherits the listener's cgroup): the proxy's listener must be created
 * inside it or below it.
 */
SEC("cgroup/getsockopt")
int fp_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct fp_sockaddr peer = {};
	struct fp_sockaddr *orig;
	__u32 r6[4];
	int level = ctx->level;

	if (ctx->optname != SO_ORIGINAL_DST_ || (level != SOL_IP_ && level != SOL_IPV6_))
		goto out;
	if (ctx->retval != -ENOENT_ && ctx->retval != -ENOPROTOOPT_)
		goto out;
	if (!sk || sk->protocol != IPPROTO_TCP || (sk->family != AF_INET && sk->family != AF_INET6))
		goto out;
	r6[0] = sk->dst_ip6[0];
	r6[1] = sk->dst_ip6[1];
	r6[2] = sk->dst_ip6[2];
	r6[3] = sk->dst_ip6[3];
	sock_addr(peer.addr, &peer.family, sk->family, sk->dst_ip4, r6);
	peer.port = sk->dst_port;
	peer.proto = IPPROTO_TCP;
	orig = bpf_map_lookup_elem(&orig_dst, &peer);
	if (!orig)
		goto out;

	if (level == SOL_IP_ && orig->family == FP_FAMILY_V4) {
		struct sockaddr_in_ *sin = ctx->optval;
		if ((void *)(sin + 1) > ctx->optval_end)
			goto out; /* the caller's buffer is too small: leave the kernel's error */
		sin->family = AF_INET;
		sin->port = orig->port;
		__builtin_memcpy(&sin->addr, orig->addr, 4);
		__builtin_memset(sin->zero, 0, sizeof(sin->zero));
		ctx->optlen = sizeof(*sin);
	} else if (level == SOL_IPV6_ && orig->family == FP_FAMILY_V6) {
		struct sockaddr_in6_ *sin6 = ctx->optval;
		if ((void *)(sin6 + 1) > ctx->optval_end)
			goto out;
		sin6->family = AF_INET6;
		sin6->port = orig->port;
		sin6->flowinfo = 0;
		__builtin_memcpy(sin6->addr, orig->addr, 16);
		sin6->scope_id = 0;
		ctx->optlen = sizeof(*sin6);
	} else {
		goto out; /* asked in the other family's terms: as the kernel, no answer */
	}
	ctx->retval = 0;
	count(FP_CNT_ORIG_DST_SOCKOPT, 1);
	return 1;
out:
	/* kernels before 6.5 fail options longer than a page that a program leaves as they are */
	if (ctx->optlen > PAGE_SIZE_)
		ctx->optlen = 0;
	return 1;
}

/* ------------------------------------------------------- runtime probes */

static __always_inline struct fp_runtime *rt_self(void)
{
	__u32 zero = 0, tid = (__u32)bpf_get_current_pid_tgid();
	struct fp_runtime *rt = bpf_map_lookup_elem(&rt_state, &zero);
	return rt && rt->tid && rt->tid == tid ? rt : NULL;
}

static __always_inline __u32 log2_bucket(__u64 us64)
{
	__u32 b = 0;
	__u64 v = us64 >> 6; /* 64 us units */
	for (int i = 0; i < FP_RT_HIST - 1; i++) {
		if (v) {
			v >>= 1;
			b++;
		}
	}
	return b < FP_RT_HIST ? b : FP_RT_HIST - 1;
}

/*
 * Every syscall entry on the machine passes here while runtime probes are on, so the
 * common case leaves after comparing the syscall number with three constants.
 */
SEC("raw_tracepoint/sys_enter")
int fp_rt_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 zero = 0, nr = (__u32)ctx->args[1];
	struct fp_runtime *rt = bpf_map_lookup_elem(&rt_state, &zero);
	__u64 now, busy;

	if (!rt || (nr != rt->nr_poll[0] && nr != rt->nr_poll[1] && nr != rt->nr_poll[2]))
		return 0;
	if (!rt->tid || rt->tid != (__u32)bpf_get_current_pid_tgid())
		return 0;
	now = bpf_ktime_get_ns();
	if (rt->poll_exit_ns && !rt->in_poll) {
		busy = now - rt->poll_exit_ns;
		rt->iterations++;
		rt->busy_ns += busy;
		if (busy > rt->busy_max_ns)
			rt->busy_max_ns = busy;
		if (rt->stall_ns && busy >= rt->stall_ns)
			rt->stalls++;
		{
			__u32 b = log2_bucket(busy / 1000);
			if (b < FP_RT_HIST)
				rt->hist[b]++;
		}
	}
	rt->in_poll = 1;
	rt->poll_enter_ns = now;
	return 0;
}

SEC("raw_tracepoint/sys_exit")
int fp_rt_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct fp_runtime *rt = rt_self();
	(void)ctx;
	/* the thread's last syscall entry was epoll: this is its return */
	if (!rt || !rt->in_poll)
		return 0;
	rt->in_poll = 0;
	rt->poll_exit_ns = bpf_ktime_get_ns();
	return 0;
}

SEC("uprobe")
int fp_gc_enter(void *ctx)
{
	struct fp_runtime *rt = rt_self();
	(void)ctx;
	if (!rt)
		return 0;
	rt->in_gc = 1;
	rt->gc_enter_ns = bpf_ktime_get_ns();
	return 0;
}

SEC("uretprobe")
int fp_gc_exit(void *ctx)
{
	struct fp_runtime *rt = rt_self();
	__u64 d;
	(void)ctx;
	if (!rt || !rt->in_gc)
		return 0;
	rt->in_gc = 0;
	d = bpf_ktime_get_ns() - rt->gc_enter_ns;
	rt->gcs++;
	rt->gc_ns += d;
	if (d > rt->gc_max_ns)
		rt->gc_max_ns = d;
	return 0;
}
