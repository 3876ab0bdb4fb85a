/* Prints the ABI as the C compiler lays it out; test/abi.test.ts compares it with src/abi.ts. */
#include <stddef.h>
#include <stdio.h>
#include "fp_abi.h"

#define S(t) printf("size %s %zu\n", #t, sizeof(struct t))
#define O(t, f) printf("offset %s.%s %zu\n", #t, #f, offsetof(struct t, f))
#define C(n) printf("const %s %lld\n", #n, (long long)(n))

int main(void)
{
	S(fp_sockaddr); O(fp_sockaddr, addr); O(fp_sockaddr, port); O(fp_sockaddr, family); O(fp_sockaddr, proto);
	S(fp_service); O(fp_service, id); O(fp_service, table_size); O(fp_service, flags); O(fp_service, backend_count);
	S(fp_flow_key); O(fp_flow_key, src); O(fp_flow_key, dst); O(fp_flow_key, sport); O(fp_flow_key, dport);
	O(fp_flow_key, proto); O(fp_flow_key, family);
	S(fp_flow); O(fp_flow, backend); O(fp_flow, backend_id); O(fp_flow, service_id); O(fp_flow, created_ns);
	S(fp_config); O(fp_config, flags); O(fp_config, outbound_port); O(fp_config, outbound_addr4);
	O(fp_config, outbound_addr6);
	S(fp_event); O(fp_event, ts_ns); O(fp_event, key); O(fp_event, type); O(fp_event, backend_id);
	O(fp_event, service_id);
	S(fp_conn); O(fp_conn, orig); O(fp_conn, tgid); O(fp_conn, start_ns); O(fp_conn, comm); O(fp_conn, dir);
	O(fp_conn, flags);
	S(fp_conn_event); O(fp_conn_event, ts_ns); O(fp_conn_event, duration_ns); O(fp_conn_event, bytes_sent);
	O(fp_conn_event, bytes_received); O(fp_conn_event, cookie); O(fp_conn_event, key); O(fp_conn_event, orig);
	O(fp_conn_event, tgid); O(fp_conn_event, comm); O(fp_conn_event, srtt_us); O(fp_conn_event, retrans);
	O(fp_conn_event, type); O(fp_conn_event, dir); O(fp_conn_event, outcome); O(fp_conn_event, flags);
	O(fp_conn_event, old_state); O(fp_conn_event, err);
	S(fp_dest_key); O(fp_dest_key, addr); O(fp_dest_key, dir);
	S(fp_dest_stats); O(fp_dest_stats, opened); O(fp_dest_stats, udp_datagrams);
	S(fp_lb_stats); O(fp_lb_stats, packets); O(fp_lb_stats, bytes); O(fp_lb_stats, flows);
	C(FP_CFG_F_OBSERVE); C(FP_CFG_F_CONN_EVENTS); C(FP_EV_CONN_OPEN); C(FP_EV_CONN_CLOSE); C(FP_EV_UDP_CONNECT);
	C(FP_DIR_OUTBOUND); C(FP_DIR_INBOUND); C(FP_OUT_NONE); C(FP_OUT_OK); C(FP_OUT_REFUSED); C(FP_OUT_RESET);
	C(FP_OUT_TIMEOUT); C(FP_OUT_ERROR); C(FP_OUT_ABORTED); C(FP_CONN_F_PROXY); C(FP_CONN_F_REDIRECTED);
	C(FP_CNT_CONN_EVENTS); C(FP_CNT_CONN_EVENTS_LOST); C(FP_CNT_CONN_UNTRACKED);
	S(fp_runtime); O(fp_runtime, tid); O(fp_runtime, in_poll); O(fp_runtime, nr_poll); O(fp_runtime, in_gc);
	O(fp_runtime, stall_ns); O(fp_runtime, poll_enter_ns); O(fp_runtime, poll_exit_ns); O(fp_runtime, iterations);
	O(fp_runtime, busy_ns); O(fp_runtime, busy_max_ns); O(fp_runtime, stalls); O(fp_runtime, gc_enter_ns);
	O(fp_runtime, gcs); O(fp_runtime, gc_ns); O(fp_runtime, gc_max_ns); O(fp_runtime, hist); C(FP_RT_HIST);
	C(FP_ABI_VERSION); C(FP_MAX_SERVICES); C(FP_MAX_BACKENDS); C(FP_MAGLEV_MAX);
	C(FP_SVC_F_USERSPACE); C(FP_CFG_F_FIB); C(FP_CFG_F_EVENTS); C(FP_CFG_F_INTERCEPT); C(FP_CFG_F_SOCKMAP);
	C(FP_EV_FLOW_NEW); C(FP_EV_CONNECT_REDIRECT);
	C(FP_CNT_RX_PACKETS); C(FP_CNT_RX_BYTES); C(FP_CNT_TX_PACKETS); C(FP_CNT_REDIRECT_PACKETS);
	C(FP_CNT_XSK_PACKETS); C(FP_CNT_PASS_PACKETS); C(FP_CNT_FWD_BYTES); C(FP_CNT_DROP_NO_BACKEND);
	C(FP_CNT_DROP_FAMILY); C(FP_CNT_PASS_TRUNCATED); C(FP_CNT_PASS_FRAGMENT); C(FP_CNT_PASS_IP_OPTIONS);
	C(FP_CNT_PASS_OTHER_PROTO); C(FP_CNT_PASS_NO_SERVICE); C(FP_CNT_PASS_FIB_MISS); C(FP_CNT_FLOW_NEW);
	C(FP_CNT_FLOW_HIT); C(FP_CNT_REVERSE_NAT); C(FP_CNT_CONNECT_REDIRECT); C(FP_CNT_SOCKMAP_ADD);
	C(FP_CNT_SOCKMAP_REDIRECT); C(FP_CNT_EVENTS_LOST);
	C(FP_CNT_ORIG_DST_SOCKOPT); C(FP_CNT__MAX);
	return 0;
}
