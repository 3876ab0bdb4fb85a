/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounds-checked header parsing. Each helper takes the cursor and data_end and
 * returns a pointer to the header (cursor advanced past it) or NULL when the
 * packet is too short; callers treat NULL as "truncated" and pass the packet.
 */
#ifndef PILOTFISH_PARSING_H
#define PILOTFISH_PARSING_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>

struct cursor {
	void *pos;
	void *end;
};

#define DEFINE_PARSER(name, type)                                              \
	static __always_inline type *name(struct cursor *c)                      \
	{                                                                         \
		type *h = c->pos;                                                 \
		if ((void *)(h + 1) > c->end)                                     \
			return NULL;                                              \
		c->pos = h + 1;                                                   \
		return h;                                                         \
	}

DEFINE_PARSER(parse_eth, struct ethhdr)
DEFINE_PARSER(parse_ip4, struct iphdr)
DEFINE_PARSER(parse_ip6, struct ipv6hdr)
DEFINE_PARSER(parse_tcp, struct tcphdr)
DEFINE_PARSER(parse_udp, struct udphdr)

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

#endif
