/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AF_XDP forwarder. xdp_lb hands it the frames of `userspace` services; it makes
 * the same decision as the kernel path (flow map, else Maglev over the same maps,
 * same hash), records the flow and its reverse entry (so backend replies are
 * translated back by xdp_lb in the kernel), rewrites the destination and injects
 * the packet into the stack's routing through a raw IP socket. Receive side only:
 * the socket is bound in copy mode, so it works on veth and on any NIC.
 *
 * Raw rings (linux/if_xdp.h), no libxdp: the rings are a few lines and it keeps
 * the helper's dependencies to libbpf.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/if_xdp.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf.h>

#include "fp_abi.h"
#include "csum.h"
#include "hash.h"
#include "xsk_fwd.h"

#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef AF_XDP
#define AF_XDP 44
#endif

#define NUM_FRAMES 4096
#define FRAME_SIZE 2048
#define RING_SIZE 2048

struct ring {
	__u32 *producer, *consumer;
	void *descs;
	void *map;
	size_t map_len;
};

struct xsk_fwd {
	int fd, raw4, raw6;
	__u32 queue;
	struct xsk_fwd_maps maps;
	void *umem;
	struct ring fill, rx;
	pthread_t thread;
	atomic_int stop;
	_Atomic __u64 rx_n, tx_n, dropped, no_backend;
};

static int map_ring(int fd, struct ring *r, __u64 pgoff, const struct xdp_ring_offset *o, size_t desc_size)
{
	r->map_len = o->desc + RING_SIZE * desc_size;
	r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, (off_t)pgoff);
	if (r->map == MAP_FAILED)
		return -1;
	r->producer = (__u32 *)((char *)r->map + o->producer);
	r->consumer = (__u32 *)((char *)r->map + o->consumer);
	r->descs = (char *)r->map + o->desc;
	return 0;
}

/* Parsed view of a frame: the same fields xdp_lb fills. */
struct view {
	struct fp_flow_key key;
	struct iphdr *ip4;
	struct ipv6hdr *ip6;
	__u16 *csum, *sport, *dport;
	size_t l3_len;
	unsigned char *l3;
};

static int parse(unsigned char *p, size_t len, struct view *v)
{
	struct ethhdr *eth = (struct ethhdr *)p;
	unsigned char *l4;
	__u8 proto;

	memset(v, 0, sizeof(*v));
	if (len < sizeof(*eth))
		return -1;
	v->l3 = p + sizeof(*eth);
	if (eth->h_proto == htons(ETH_P_IP)) {
		if (len < sizeof(*eth) + sizeof(struct iphdr))
			return -1;
		v->ip4 = (struct iphdr *)v->l3;
		if (v->ip4->ihl != 5 || (v->ip4->frag_off & htons(0x3fff)))
			return -1;
		v->l3_len = ntohs(v->ip4->tot_len);
		proto = v->ip4->protocol;
		memcpy(v->key.src, &v->ip4->saddr, 4);
		memcpy(v->key.dst, &v->ip4->daddr, 4);
		v->key.family = FP_FAMILY_V4;
		l4 = v->l3 + sizeof(struct iphdr);
	} else if (eth->h_proto == htons(ETH_P_IPV6)) {
		if (len < sizeof(*eth) + sizeof(struct ipv6hdr))
			return -1;
		v->ip6 = (struct ipv6hdr *)v->l3;
		v->l3_len = sizeof(struct ipv6hdr) + ntohs(v->ip6->payload_len);
		proto = v->ip6->nexthdr;
		memcpy(v->key.src, &v->ip6->saddr, 16);
		memcpy(v->key.dst, &v->ip6->daddr, 16);
		v->key.family = FP_FAMILY_V6;
		l4 = v->l3 + sizeof(struct ipv6hdr);
	} else {
		return -1;
	}
	if (v->l3_len > len - sizeof(*eth))
		return -1;
	if (proto == IPPROTO_TCP && (size_t)(l4 - p) + sizeof(struct tcphdr) <= len) {
		struct tcphdr *th = (struct tcphdr *)l4;
		v->csum = &th->check;
		v->sport = &th->source;
		v->dport = &th->dest;
	} else if (proto == IPPROTO_UDP && (size_t)(l4 - p) + sizeof(struct udphdr) <= len) {
		struct udphdr *uh = (struct udphdr *)l4;
		v->csum = (v->ip4 && uh->check == 0) ? NULL : &uh->check;
		v->sport = &uh->source;
		v->dport = &uh->dest;
	} else {
		return -1;
	}
	v->key.proto = proto;
	v->key.sport = *v->sport;
	v->key.dport = *v->dport;
	return 0;
}

static void rewrite_dst(struct view *v, const struct fp_sockaddr *to)
{
	int words = v->ip4 ? 2 : 8;
	__u16 oldw[8], neww[8];
	void *a = v->ip4 ? (void *)&v->ip4->daddr : (void *)&v->ip6->daddr;

	memcpy(oldw, a, words * 2);
	memcpy(neww, to->addr, words * 2);
	if (v->ip4)
		csum_replace_words(&v->ip4->check, oldw, neww, words);
	if (v->csum) {
		csum_replace_words(v->csum, oldw, neww, words);
		csum_replace16(v->csum, *v->dport, to->port);
		if (*v->csum == 0 && v->key.proto == IPPROTO_UDP)
			*v->csum = 0xffff;
	}
	memcpy(a, to->addr, words * 2);
	*v->dport = to->port;
}

static __u64 now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

/* Picks (or recalls) the backend, records the flow both ways. 0 on success. */
static int choose(struct xsk_fwd *f, struct view *v, struct fp_flow *flow)
{
	struct fp_sockaddr vip = { 0 };
	struct fp_service svc;
	struct fp_flow_key rk = { 0 };
	__u32 idx, bid = 0;

	if (bpf_map_lookup_elem(f->maps.flows, &v->key, flow) == 0)
		return 0;
	memcpy(vip.addr, v->key.dst, 16);
	vip.port = v->key.dport;
	vip.family = v->key.family;
	vip.proto = v->key.proto;
	if (bpf_map_lookup_elem(f->maps.services, &vip, &svc) || svc.table_size == 0 ||
	    svc.table_size > FP_MAGLEV_MAX || svc.id >= FP_MAX_SERVICES)
		return -1;
	idx = svc.id * FP_MAGLEV_MAX + flow_hash(&v->key) % svc.table_size;
	if (bpf_map_lookup_elem(f->maps.maglev, &idx, &bid) || bid == 0)
		return -1;
	memset(flow, 0, sizeof(*flow));
	if (bpf_map_lookup_elem(f->maps.backends, &bid, &flow->backend) || flow->backend.family != v->key.family)
		return -1;
	flow->backend_id = bid;
	flow->service_id = svc.id;
	flow->created_ns = now_ns();
	bpf_map_update_elem(f->maps.flows, &v->key, flow, BPF_ANY);
	memcpy(rk.src, flow->backend.addr, 16);
	memcpy(rk.dst, v->key.src, 16);
	rk.sport = flow->backend.port;
	rk.dport = v->key.sport;
	rk.proto = v->key.proto;
	rk.family = v->key.family;
	bpf_map_update_elem(f->maps.rev_flows, &rk, &vip, BPF_ANY);
	return 0;
}

static void handle(struct xsk_fwd *f, unsigned char *p, size_t len)
{
	struct view v;
	struct fp_flow flow;
	ssize_t n;

	f->rx_n++;
	if (parse(p, len, &v)) {
		f->dropped++;
		return;
	}
	if (choose(f, &v, &flow)) {
		f->no_backend++;
		return;
	}
	rewrite_dst(&v, &flow.backend);
	if (v.ip4) {
		struct sockaddr_in to = { .sin_family = AF_INET };
		memcpy(&to.sin_addr, flow.backend.addr, 4);
		n = sendto(f->raw4, v.l3, v.l3_len, 0, (struct sockaddr *)&to, sizeof(to));
	} else {
		struct sockaddr_in6 to = { .sin6_family = AF_INET6 };
		memcpy(&to.sin6_addr, flow.backend.addr, 16);
		n = sendto(f->raw6, v.l3, v.l3_len, 0, (struct sockaddr *)&to, sizeof(to));
	}
	if (n == (ssize_t)v.l3_len)
		f->tx_n++;
	else
		f->dropped++;
}

static void *run(void *arg)
{
	struct xsk_fwd *f = arg;
	__u64 *fill = f->fill.descs;
	struct xdp_desc *rx = f->rx.descs;

	while (!atomic_load(&f->stop)) {
		struct pollfd pfd = { .fd = f->fd, .events = POLLIN };
		__u32 prod, cons, fprod;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		prod = __atomic_load_n(f->rx.producer, __ATOMIC_ACQUIRE);
		cons = *f->rx.consumer;
		fprod = *f->fill.producer;
		for (; cons != prod; cons++) {
			struct xdp_desc *d = &rx[cons & (RING_SIZE - 1)];
			handle(f, (unsigned char *)f->umem + d->addr, d->len);
			/* the frame goes straight back to the kernel for the next packet */
			fill[fprod++ & (RING_SIZE - 1)] = d->addr - (d->addr % FRAME_SIZE);
		}
		__atomic_store_n(f->rx.consumer, cons, __ATOMIC_RELEASE);
		__atomic_store_n(f->fill.producer, fprod, __ATOMIC_RELEASE);
	}
	return NULL;
}

static struct xsk_fwd *fail(struct xsk_fwd *f, char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s: %s", what, strerror(errno));
	xsk_fwd_stop(f);
	return NULL;
}

struct xsk_fwd *xsk_fwd_start(const char *ifname, __u32 queue, const struct xsk_fwd_maps *maps, char *err, size_t errlen)
{
	struct xsk_fwd *f = calloc(1, sizeof(*f));
	struct xdp_mmap_offsets off;
	socklen_t optlen = sizeof(off);
	int ring = RING_SIZE, one = 1;
	unsigned ifindex = if_nametoindex(ifname);

	if (!f)
		return NULL;
	f->fd = f->raw4 = f->raw6 = -1;
	f->maps = *maps;
	f->queue = queue;
	f->fill.map = f->rx.map = MAP_FAILED;
	if (!ifindex)
		return fail(f, err, errlen, ifname);
	f->umem = mmap(NULL, NUM_FRAMES * FRAME_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (f->umem == MAP_FAILED) {
		f->umem = NULL;
		return fail(f, err, errlen, "umem");
	}
	f->fd = socket(AF_XDP, SOCK_RAW, 0);
	if (f->fd < 0)
		return fail(f, err, errlen, "socket(AF_XDP)");
	struct xdp_umem_reg mr = { .addr = (__u64)(unsigned long)f->umem, .len = NUM_FRAMES * FRAME_SIZE, .chunk_size = FRAME_SIZE };
	if (setsockopt(f->fd, SOL_XDP, XDP_UMEM_REG, &mr, sizeof(mr)) ||
	    setsockopt(f->fd, SOL_XDP, XDP_UMEM_FILL_RING, &ring, sizeof(ring)) ||
	    setsockopt(f->fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &ring, sizeof(ring)) ||
	    setsockopt(f->fd, SOL_XDP, XDP_RX_RING, &ring, sizeof(ring)))
		return fail(f, err, errlen, "AF_XDP rings");
	if (getsockopt(f->fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &optlen))
		return fail(f, err, errlen, "XDP_MMAP_OFFSETS");
	if (map_ring(f->fd, &f->fill, XDP_UMEM_PGOFF_FILL_RING, &off.fr, sizeof(__u64)) ||
	    map_ring(f->fd, &f->rx, XDP_PGOFF_RX_RING, &off.rx, sizeof(struct xdp_desc)))
		return fail(f, err, errlen, "mmap rings");
	/* hand the kernel half of the frames to receive into */
	__u64 *fill = f->fill.descs;
	for (__u32 i = 0; i < RING_SIZE; i++)
		fill[i] = (__u64)i * FRAME_SIZE;
	__atomic_store_n(f->fill.producer, RING_SIZE, __ATOMIC_RELEASE);

	struct sockaddr_xdp sxdp = { .sxdp_family = AF_XDP, .sxdp_ifindex = ifindex, .sxdp_queue_id = queue, .sxdp_flags = XDP_COPY };
	if (bind(f->fd, (struct sockaddr *)&sxdp, sizeof(sxdp)))
		return fail(f, err, errlen, "bind AF_XDP (copy mode)");
	f->raw4 = socket(AF_INET, SOCK_RAW, IPPROTO_RAW); /* IPPROTO_RAW implies IP_HDRINCL */
	f->raw6 = socket(AF_INET6, SOCK_RAW, IPPROTO_RAW);
	if (f->raw4 < 0 || f->raw6 < 0)
		return fail(f, err, errlen, "raw socket");
	setsockopt(f->raw4, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one));
	if (bpf_map_update_elem(maps->xsks, &queue, &f->fd, BPF_ANY))
		return fail(f, err, errlen, "xsks map");
	if (pthread_create(&f->thread, NULL, run, f)) {
		bpf_map_delete_elem(maps->xsks, &queue);
		return fail(f, err, errlen, "thread");
	}
	return f;
}

void xsk_fwd_read_stats(struct xsk_fwd *f, struct xsk_fwd_stats *out)
{
	out->rx = f->rx_n;
	out->tx = f->tx_n;
	out->dropped = f->dropped;
	out->no_backend = f->no_backend;
}

void xsk_fwd_stop(struct xsk_fwd *f)
{
	if (!f)
		return;
	if (f->thread) {
		bpf_map_delete_elem(f->maps.xsks, &f->queue);
		atomic_store(&f->stop, 1);
		pthread_join(f->thread, NULL);
	}
	if (f->fill.map != MAP_FAILED)
		munmap(f->fill.map, f->fill.map_len);
	if (f->rx.map != MAP_FAILED)
		munmap(f->rx.map, f->rx.map_len);
	if (f->fd >= 0)
		close(f->fd);
	if (f->raw4 >= 0)
		close(f->raw4);
	if (f->raw6 >= 0)
		close(f->raw6);
	if (f->umem)
		munmap(f->umem, NUM_FRAMES * FRAME_SIZE);
	free(f);
}
