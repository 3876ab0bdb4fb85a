/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Incremental Internet checksum update (RFC 1624: HC' = ~(~HC + ~m + m')) over
 * 16-bit words as they sit in memory; one's-complement sums do not care about
 * byte order as long as old and new words are read the same way.
 */
#ifndef PILOTFISH_CSUM_H
#define PILOTFISH_CSUM_H

#include <linux/types.h>

static __always_inline __u16 csum_fold32(__u32 c)
{
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)c;
}

/* Replace `words` 16-bit words `from` by `to` inside the sum `*sum`. */
static __always_inline void csum_replace_words(__u16 *sum, const __u16 *from, const __u16 *to, int words)
{
	__u32 acc = (__u16)~*sum;
#ifdef __bpf__
#pragma unroll
#endif
	for (int i = 0; i < 8; i++) {
		if (i >= words)
			break;
		acc += (__u16)~from[i];
		acc += to[i];
	}
	*sum = ~csum_fold32(acc);
}

static __always_inline void csum_replace16(__u16 *sum, __u16 from, __u16 to)
{
	csum_replace_words(sum, &from, &to, 1);
}

#endif
