/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Standalone XDP_PASS for the far end of a veth pair (in another netns): a veth
 * only accepts XDP_REDIRECTed frames when its peer runs an XDP program (or GRO).
 * Loaded with `ip link set dev X xdpdrv obj xdp_pass.bpf.o sec xdp`.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_pass_only(struct xdp_md *ctx)
{
	return XDP_PASS;
}
