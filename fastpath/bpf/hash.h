/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The flow hash that picks a Maglev slot. Shared by xdp_lb and the AF_XDP
 * forwarder so both choose the same backend for the same 5-tuple.
 */
#ifndef PILOTFISH_HASH_H
#define PILOTFISH_HASH_H

#include "fp_abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

static __always_inline __u32 fp_rotl(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

/* murmur3-style mix over the whole key: cheap, and spreads nearby ports well. */
static __always_inline __u32 flow_hash(const struct fp_flow_key *key)
{
	__u32 w[sizeof(*key) / 4];
	__u32 h = 0x9747b28c;

	__builtin_memcpy(w, key, sizeof(w));
#ifdef __bpf__
#pragma unroll
#endif
	for (int i = 0; i < (int)(sizeof(w) / 4); i++) {
		__u32 k = w[i] * 0xcc9e2d51;
		k = fp_rotl(k, 15) * 0x1b873593;
		h ^= k;
		h = fp_rotl(h, 13) * 5 + 0xe6546b64;
	}
	h ^= sizeof(*key);
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

#endif
