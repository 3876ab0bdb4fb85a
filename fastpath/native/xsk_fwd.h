/* SPDX-License-Identifier: Apache-2.0 */
/* The AF_XDP forwarder: user-space processing for services marked `userspace`. */
#ifndef PILOTFISH_XSK_FWD_H
#define PILOTFISH_XSK_FWD_H

#include <stddef.h>
#include <linux/types.h>

struct xsk_fwd_maps {
	int xsks, services, maglev, backends, flows, rev_flows;
};

struct xsk_fwd_stats {
	__u64 rx, tx, dropped, no_backend;
};

struct xsk_fwd;

/*
 * Binds an AF_XDP socket to ifname/queue (copy mode: works on any driver), puts it
 * into the xsks map, and forwards from a thread until xsk_fwd_stop(). Returns NULL
 * with a reason in err on failure.
 */
struct xsk_fwd *xsk_fwd_start(const char *ifname, __u32 queue, const struct xsk_fwd_maps *maps, char *err, size_t errlen);
void xsk_fwd_read_stats(struct xsk_fwd *f, struct xsk_fwd_stats *out);
void xsk_fwd_stop(struct xsk_fwd *f);

#endif
