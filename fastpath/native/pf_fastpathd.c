/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pf-fastpathd: the privileged half of the bridge. Loads the fast path object,
 * attaches programs on request, and serves a line protocol on stdin/stdout so
 * that TypeScript can read and write maps without a native addon:
 *
 *   U <map> <keyhex> <valhex>      update          -> OK | ERR <why>
 *   B <map> <hex>                  batch update: key||value repeated -> OK <n> | ERR <why>
 *   D <map> <keyhex>               delete          -> OK | ERR <why>
 *   G <map> <keyhex>               lookup          -> OK <valhex> | ERR <why>
 *   S                              counters summed over CPUs -> OK <n0> <n1> ...
 *   T <ifindex> <pkthex>           BPF_PROG_TEST_RUN of xdp_lb -> OK <verdict> <outhex>
 *   A xdp <ifname> <native|generic>  attach xdp_lb (a BPF link)
 *   A peer <ifname> <native|generic> attach xdp_pass (veth peers, for XDP_REDIRECT)
 *   A cgroup <path> <connect|sockmap|all>  attach the interception programs
 *                                  (connect: connect4/6 + getsockopt for SO_ORIGINAL_DST)
 *   A cgroup <path> observe        connection telemetry: connect4/6 + sockops + sendmsg4/6
 *                                  (a program already attached to that cgroup is not attached twice)
 *   M <map>                        dump a map -> OK <n> <keyhex>:<valhex> ... (per-CPU values summed
 *                                  as u64 fields; all-zero array entries left out)
 *   Z <map> <keyhex>               zero one entry of a per-CPU map on every CPU
 *   A runtime <pid> <stall_ms> <log_ms>  runtime probes on a node process: event-loop iterations (raw
 *                                  sys_enter/sys_exit, its main thread's epoll calls) and V8 GC
 *                                  (uprobes on Heap::CollectGarbage) -> OK <gc probes 1|0>
 *                                  A loop blocked longer than log_ms is logged on fd 3 (else
 *                                  stderr) by this process, so it shows while the proxy is stuck.
 *   P                              per program: OK <name> <run_time_ns> <run_cnt> ... (kernel.bpf_stats_enabled)
 *   A xsk <ifname> <queue|all>      start the AF_XDP forwarder on that queue (or every rx queue)
 *   X                              forwarder counters -> OK <rx> <tx> <dropped> <no_backend>
 *   Q                              detach everything, exit
 *
 * Asynchronous lines start with "E " (XDP flow events, hex) or "F " (connection events, hex). Everything is
 * attached as a BPF link or to maps owned by this process, so if the process dies
 * (also by SIGKILL) the kernel detaches it all: nothing outlives its owner.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <gelf.h>
#include <libelf.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "fp_abi.h"
#include "fastpath.skel.h"
#include "xsk_fwd.h"

#define FP_MAX_LINKS 64
#define LINE_MAX_ (1 << 20)

static struct fastpath *skel;
static int links[FP_MAX_LINKS];
static int nlinks;
static int msg_attached_map = -1;
static int ncpus;
#define FP_MAX_XSK 8
static struct xsk_fwd *xsk[FP_MAX_XSK];
static int nxsk;

#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif
#define FP_MAX_RT_LINKS 4
static struct bpf_link *rt_links[FP_MAX_RT_LINKS];
static int nrt_links;
static int rt_pid;
static __u64 rt_log_ns;
static FILE *rt_log;

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Decodes hex into buf; returns byte count or -1. */
static int unhex(const char *s, unsigned char *buf, size_t cap)
{
	size_t n = strlen(s);
	if (n % 2 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		buf[i] = (unsigned char)(hi << 4 | lo);
	}
	return (int)(n / 2);
}

static void puthex(const unsigned char *b, size_t n)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		putchar(d[b[i] >> 4]);
		putchar(d[b[i] & 15]);
	}
}

static struct bpf_map *map_by_name(const char *name)
{
	return bpf_object__find_map_by_name(skel->obj, name);
}

static void reply_err(const char *what, int err)
{
	printf("ERR %s: %s\n", what, strerror(err < 0 ? -err : err));
}

static void cmd_map(char op, char *args)
{
	char *name = strtok(args, " "), *khex = strtok(NULL, " "), *vhex = strtok(NULL, " ");
	static unsigned char key[256], val[4096];
	struct bpf_map *m;
	int kn, vn, err;

	if (!name || !khex || !(m = map_by_name(name))) {
		printf("ERR unknown map\n");
		return;
	}
	kn = unhex(khex, key, sizeof(key));
	if (kn != (int)bpf_map__key_size(m)) {
		printf("ERR key size %d, want %u\n", kn, bpf_map__key_size(m));
		return;
	}
	if (op == 'U') {
		vn = vhex ? unhex(vhex, val, sizeof(val)) : -1;
		if (vn != (int)bpf_map__value_size(m)) {
			printf("ERR value size %d, want %u\n", vn, bpf_map__value_size(m));
			return;
		}
		err = bpf_map_update_elem(bpf_map__fd(m), key, val, BPF_ANY);
	} else if (op == 'D') {
		err = bpf_map_delete_elem(bpf_map__fd(m), key);
	} else {
		err = bpf_map_lookup_elem(bpf_map__fd(m), key, val);
		if (!err) {
			printf("OK ");
			puthex(val, bpf_map__value_size(m));
			putchar('\n');
			return;
		}
	}
	if (err)
		reply_err(name, errno);
	else
		printf("OK\n");
}

/* Many updates in one line: what a Maglev table rebuild sends. */
static void cmd_batch(char *args)
{
	char *name = strtok(args, " "), *hex = strtok(NULL, " ");
	static unsigned char buf[LINE_MAX_ / 2];
	struct bpf_map *m;
	size_t ks, vs, n, i;
	int len;

	if (!name || !hex || !(m = map_by_name(name))) {
		printf("ERR unknown map\n");
		return;
	}
	ks = bpf_map__key_size(m);
	vs = bpf_map__value_size(m);
	len = unhex(hex, buf, sizeof(buf));
	if (len < 0 || (size_t)len % (ks + vs)) {
		printf("ERR batch length %d is not a multiple of %zu\n", len, ks + vs);
		return;
	}
	n = (size_t)len / (ks + vs);
	for (i = 0; i < n; i++) {
		unsigned char *e = buf + i * (ks + vs);
		if (bpf_map_update_elem(bpf_map__fd(m), e, e + ks, BPF_ANY)) {
			printf("ERR %s entry %zu: %s\n", name, i, strerror(errno));
			return;
		}
	}
	printf("OK %zu\n", n);
}

static void cmd_stats(void)
{
	__u64 vals[256];
	int fd = bpf_map__fd(skel->maps.counters);

	printf("OK");
	for (__u32 i = 0; i < FP_CNT__MAX; i++) {
		__u64 sum = 0;
		if (bpf_map_lookup_elem(fd, &i, vals) == 0)
			for (int c = 0; c < ncpus && c < 256; c++)
				sum += vals[c];
		printf(" %llu", (unsigned long long)sum);
	}
	putchar('\n');
}

static int all_zero(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static int is_percpu(struct bpf_map *m)
{
	enum bpf_map_type t = bpf_map__type(m);
	return t == BPF_MAP_TYPE_PERCPU_ARRAY || t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

/* Every entry of a (bounded) map in one line: what the metrics of dest_stats/svc_stats/be_stats read. */
static void cmd_dump(char *args)
{
	char *name = strtok(args, " ");
	static unsigned char key[256], next[256], val[4096 * 8], sum[4096];
	struct bpf_map *m;
	size_t ks, vs, stride;
	int fd, n = 0, first = 1, percpu;

	if (!name || !(m = map_by_name(name))) {
		printf("ERR unknown map\n");
		return;
	}
	ks = bpf_map__key_size(m);
	vs = bpf_map__value_size(m);
	percpu = is_percpu(m);
	stride = (vs + 7) & ~(size_t)7;
	if (ks > sizeof(key) || vs > sizeof(sum) || (percpu && (vs % 8 || stride * (size_t)ncpus > sizeof(val)))) {
		printf("ERR map too wide to dump\n");
		return;
	}
	fd = bpf_map__fd(m);
	/* count first so the reply can say how many; then print (the map may change in between: fine) */
	printf("OK");
	while (bpf_map_get_next_key(fd, first ? NULL : key, next) == 0) {
		first = 0;
		memcpy(key, next, ks);
		if (bpf_map_lookup_elem(fd, key, val))
			continue;
		if (percpu) {
			memset(sum, 0, vs);
			for (int c = 0; c < ncpus; c++)
				for (size_t f = 0; f < vs / 8; f++)
					((__u64 *)sum)[f] += ((__u64 *)(val + (size_t)c * stride))[f];
		} else {
			memcpy(sum, val, vs);
		}
		if ((bpf_map__type(m) == BPF_MAP_TYPE_ARRAY || bpf_map__type(m) == BPF_MAP_TYPE_PERCPU_ARRAY) && all_zero(sum, vs))
			continue;
		putchar(' ');
		puthex(key, ks);
		putchar(':');
		puthex(sum, vs);
		n++;
	}
	putchar('\n');
	(void)n;
}

static void cmd_zero(char *args)
{
	char *name = strtok(args, " "), *khex = strtok(NULL, " ");
	static unsigned char key[256], val[4096 * 8];
	struct bpf_map *m;
	size_t vs;

	if (!name || !khex || !(m = map_by_name(name)) || !is_percpu(m)) {
		printf("ERR unknown per-CPU map\n");
		return;
	}
	vs = ((size_t)bpf_map__value_size(m) + 7) & ~(size_t)7;
	if (unhex(khex, key, sizeof(key)) != (int)bpf_map__key_size(m) || vs * (size_t)ncpus > sizeof(val)) {
		printf("ERR key size\n");
		return;
	}
	memset(val, 0, vs * (size_t)ncpus);
	if (bpf_map_update_elem(bpf_map__fd(m), key, val, BPF_ANY))
		reply_err(name, errno);
	else
		printf("OK\n");
}

static void cmd_prog_stats(void)
{
	struct bpf_program *p;

	printf("OK");
	bpf_object__for_each_program(p, skel->obj) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
			continue;
		printf(" %s %llu %llu", bpf_program__name(p), (unsigned long long)info.run_time_ns,
		       (unsigned long long)info.run_cnt);
	}
	putchar('\n');
}

static void cmd_test_run(char *args)
{
	static unsigned char in[9216], out[9216 + 512];
	char *ifs = strtok(args, " "), *hex = strtok(NULL, " ");
	struct xdp_md ctx = {};
	int n;

	if (!ifs || !hex || (n = unhex(hex, in, sizeof(in))) < 0) {
		printf("ERR bad packet\n");
		return;
	}
	ctx.ingress_ifindex = (__u32)atoi(ifs);
	ctx.data_end = (__u32)n;
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = (__u32)n, .data_out = out,
		    .data_size_out = sizeof(out), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
	if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.xdp_lb), &opts)) {
		reply_err("test_run", errno);
		return;
	}
	printf("OK %u ", opts.retval);
	puthex(out, opts.data_size_out);
	putchar('\n');
}

static int add_link(int fd)
{
	if (nlinks == FP_MAX_LINKS) {
		close(fd);
		errno = ENOSPC;
		return -1;
	}
	links[nlinks++] = fd;
	return 0;
}

/* (program, cgroup) pairs already linked: interception and observation share programs and often the cgroup */
static struct { int prog; enum bpf_attach_type type; ino_t ino; } attached[FP_MAX_LINKS];
static int nattached;

static int attach_cgroup_prog(struct bpf_program *p, int cg, enum bpf_attach_type type)
{
	struct stat st;
	int fd;

	if (fstat(cg, &st))
		return -1;
	for (int i = 0; i < nattached; i++)
		if (attached[i].prog == bpf_program__fd(p) && attached[i].type == type && attached[i].ino == st.st_ino)
			return 0;
	fd = bpf_link_create(bpf_program__fd(p), cg, type, NULL);
	if (fd < 0 || add_link(fd))
		return -1;
	if (nattached < FP_MAX_LINKS) {
		attached[nattached].prog = bpf_program__fd(p);
		attached[nattached].type = type;
		attached[nattached].ino = st.st_ino;
		nattached++;
	}
	return 0;
}

/* rx queues of an interface as this netns's sysfs shows them (at least 1) */
static int rx_queues(const char *ifname)
{
	char path[128];
	int n = 0;
	for (;;) {
		snprintf(path, sizeof(path), "/sys/class/net/%s/queues/rx-%d", ifname, n);
		if (access(path, F_OK))
			break;
		n++;
	}
	return n > 0 ? n : 1;
}

/* The first symbol of an ELF file whose name starts with prefix (V8's mangled names carry argument types). */
static int find_symbol(const char *path, const char *prefix, char *out, size_t cap)
{
	int fd = open(path, O_RDONLY), found = -1;
	Elf *e;
	Elf_Scn *scn = NULL;

	if (fd < 0)
		return -1;
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	while (e && found < 0 && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM))
			continue;
		d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && sh.sh_entsize && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym sym;
			const char *n;
			if (!gelf_getsym(d, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC || !sym.st_value)
				continue;
			n = elf_strptr(e, sh.sh_link, sym.st_name);
			if (n && !strncmp(n, prefix, strlen(prefix)) && strlen(n) < cap) {
				strcpy(out, n);
				found = 0;
				break;
			}
		}
	}
	if (e)
		elf_end(e);
	close(fd);
	return found;
}

static void cmd_runtime(const char *pids, const char *stall, const char *logms)
{
	struct fp_runtime rt = {};
	__u32 zero = 0;
	char exe[64], bin[4096], sym[512];
	ssize_t n;
	int gc = 0;

	rt.tid = (__u32)atoi(pids);
	rt.nr_poll[0] = SYS_epoll_pwait;
	rt.nr_poll[1] = SYS_epoll_pwait2;
#ifdef SYS_epoll_wait
	rt.nr_poll[2] = SYS_epoll_wait;
#else
	rt.nr_poll[2] = SYS_epoll_pwait;
#endif
	rt.stall_ns = (__u64)(stall ? atof(stall) : 200) * 1000000ull;
	if (!rt.tid || nrt_links) {
		printf("ERR runtime probes need a pid, once\n");
		return;
	}
	snprintf(exe, sizeof(exe), "/proc/%u/exe", rt.tid);
	n = readlink(exe, bin, sizeof(bin) - 1);
	if (n <= 0) {
		reply_err(exe, errno);
		return;
	}
	bin[n] = 0;
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.rt_state), &zero, &rt, BPF_ANY)) {
		reply_err("rt_state", errno);
		return;
	}
	rt_links[nrt_links] = bpf_program__attach_raw_tracepoint(skel->progs.fp_rt_enter, "sys_enter");
	if (!rt_links[nrt_links]) {
		reply_err("raw_tracepoint sys_enter", errno);
		return;
	}
	nrt_links++;
	rt_links[nrt_links] = bpf_program__attach_raw_tracepoint(skel->progs.fp_rt_exit, "sys_exit");
	if (!rt_links[nrt_links]) {
		reply_err("raw_tracepoint sys_exit", errno);
		return;
	}
	nrt_links++;
	/* GC: optional, the binary may be stripped or not be node at all */
	if (find_symbol(bin, "_ZN2v88internal4Heap14CollectGarbageE", sym, sizeof(sym)) == 0) {
		LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = sym, .retprobe = false);
		struct bpf_link *a = bpf_program__attach_uprobe_opts(skel->progs.fp_gc_enter, (pid_t)rt.tid, bin, 0, &uo);
		uo.retprobe = true;
		struct bpf_link *b = a ? bpf_program__attach_uprobe_opts(skel->progs.fp_gc_exit, (pid_t)rt.tid, bin, 0, &uo) : NULL;
		if (a && b) {
			rt_links[nrt_links++] = a;
			rt_links[nrt_links++] = b;
			gc = 1;
		} else if (a) {
			bpf_link__destroy(a);
		}
	}
	rt_pid = (int)rt.tid;
	rt_log_ns = (__u64)(logms ? atof(logms) : 2000) * 1000000ull;
	printf("OK %d\n", gc);
}

/* Called from the main loop: say so, from this process, while the watched loop is stuck. */
static void rt_watch(void)
{
	static __u64 last_log_ns, reported_exit;
	struct fp_runtime rt;
	struct timespec ts;
	__u32 zero = 0;
	__u64 now;

	if (!rt_pid || bpf_map_lookup_elem(bpf_map__fd(skel->maps.rt_state), &zero, &rt))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
	if (rt.in_poll || !rt.poll_exit_ns || now - rt.poll_exit_ns < rt_log_ns) {
		if (reported_exit && reported_exit != rt.poll_exit_ns) {
			fprintf(rt_log, "pf-fastpathd: pid %d event loop answered again (blocked since %.3f s before)\n", rt_pid,
				(double)(now - reported_exit) / 1e9);
			fflush(rt_log);
			reported_exit = 0;
		}
		return;
	}
	if (now - last_log_ns < 1000000000ull)
		return;
	last_log_ns = now;
	reported_exit = rt.poll_exit_ns;
	fprintf(rt_log, "pf-fastpathd: pid %d event loop blocked for %llu ms (no return to epoll)%s\n", rt_pid,
		(unsigned long long)((now - rt.poll_exit_ns) / 1000000), rt.in_gc ? ", in V8 GC" : "");
	fflush(rt_log);
}

static void cmd_attach(char *args)
{
	char *kind = strtok(args, " "), *target = strtok(NULL, " "), *mode = strtok(NULL, " ");

	if (!kind || !target) {
		printf("ERR usage\n");
		return;
	}
	if (!strcmp(kind, "xdp") || !strcmp(kind, "peer")) {
		struct bpf_program *p = !strcmp(kind, "xdp") ? skel->progs.xdp_lb : skel->progs.xdp_pass;
		unsigned ifindex = if_nametoindex(target);
		LIBBPF_OPTS(bpf_link_create_opts, lo);
		int fd;

		if (!ifindex) {
			reply_err(target, errno);
			return;
		}
		lo.flags = (mode && !strcmp(mode, "generic")) ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
		fd = bpf_link_create(bpf_program__fd(p), (int)ifindex, BPF_XDP, &lo);
		if (fd < 0 || add_link(fd)) {
			reply_err("attach xdp", errno);
			return;
		}
		printf("OK %u\n", ifindex);
		return;
	}
	if (!strcmp(kind, "cgroup")) {
		int cg = open(target, O_RDONLY | O_DIRECTORY);
		int all = !mode || !strcmp(mode, "all");
		int err = 0;

		if (cg < 0) {
			reply_err(target, errno);
			return;
		}
		if (mode && !strcmp(mode, "observe")) {
			err = err ?: attach_cgroup_prog(skel->progs.fp_connect4, cg, BPF_CGROUP_INET4_CONNECT);
			err = err ?: attach_cgroup_prog(skel->progs.fp_connect6, cg, BPF_CGROUP_INET6_CONNECT);
			err = err ?: attach_cgroup_prog(skel->progs.fp_sendmsg4, cg, BPF_CGROUP_UDP4_SENDMSG);
			err = err ?: attach_cgroup_prog(skel->progs.fp_sendmsg6, cg, BPF_CGROUP_UDP6_SENDMSG);
			err = err ?: attach_cgroup_prog(skel->progs.fp_sockops, cg, BPF_CGROUP_SOCK_OPS);
			if (err)
				reply_err("attach observe", errno);
			else
				printf("OK\n");
			close(cg);
			return;
		}
		if (all || !strcmp(mode, "connect")) {
			err = err ?: attach_cgroup_prog(skel->progs.fp_connect4, cg, BPF_CGROUP_INET4_CONNECT);
			err = err ?: attach_cgroup_prog(skel->progs.fp_connect6, cg, BPF_CGROUP_INET6_CONNECT);
			/* SO_ORIGINAL_DST for what connect4/6 redirected; the proxy's sockets must be in this cgroup */
			err = err ?: attach_cgroup_prog(skel->progs.fp_getsockopt, cg, BPF_CGROUP_GETSOCKOPT);
		}
		err = err ?: attach_cgroup_prog(skel->progs.fp_sockops, cg, BPF_CGROUP_SOCK_OPS);
		if (!err && (all || !strcmp(mode, "sockmap")) && msg_attached_map < 0) {
			int mfd = bpf_map__fd(skel->maps.sock_pairs);
			err = bpf_prog_attach(bpf_program__fd(skel->progs.fp_sk_msg), mfd, BPF_SK_MSG_VERDICT, 0);
			if (!err)
				msg_attached_map = mfd;
		}
		if (err)
			reply_err("attach cgroup", errno);
		else
			printf("OK\n");
		close(cg);
		return;
	}
	if (!strcmp(kind, "runtime")) {
		cmd_runtime(target, mode, strtok(NULL, " "));
		return;
	}
	if (!strcmp(kind, "xsk")) {
		struct xsk_fwd_maps m = {
			.xsks = bpf_map__fd(skel->maps.xsks), .services = bpf_map__fd(skel->maps.services),
			.maglev = bpf_map__fd(skel->maps.maglev), .backends = bpf_map__fd(skel->maps.backends),
			.flows = bpf_map__fd(skel->maps.flows), .rev_flows = bpf_map__fd(skel->maps.rev_flows),
		};
		char err[256];
		int first = mode && strcmp(mode, "all") ? atoi(mode) : 0;
		int last = mode && !strcmp(mode, "all") ? rx_queues(target) - 1 : first;
		for (int q = first; q <= last; q++) {
			if (nxsk == FP_MAX_XSK) {
				printf("ERR too many AF_XDP sockets\n");
				return;
			}
			xsk[nxsk] = xsk_fwd_start(target, (__u32)q, &m, err, sizeof(err));
			if (!xsk[nxsk]) {
				printf("ERR %s\n", err);
				return;
			}
			nxsk++;
		}
		printf("OK %d\n", last - first + 1);
		return;
	}
	printf("ERR unknown attach kind\n");
}

static int on_event(void *ctx, void *data, size_t len)
{
	(void)ctx;
	printf("E ");
	puthex(data, len);
	putchar('\n');
	return 0;
}

static int on_conn_event(void *ctx, void *data, size_t len)
{
	(void)ctx;
	printf("F ");
	puthex(data, len);
	putchar('\n');
	return 0;
}

static void cmd_xsk_stats(void)
{
	struct xsk_fwd_stats sum = { 0 }, one;
	for (int i = 0; i < nxsk; i++) {
		xsk_fwd_read_stats(xsk[i], &one);
		sum.rx += one.rx;
		sum.tx += one.tx;
		sum.dropped += one.dropped;
		sum.no_backend += one.no_backend;
	}
	printf("OK %llu %llu %llu %llu\n", (unsigned long long)sum.rx, (unsigned long long)sum.tx,
	       (unsigned long long)sum.dropped, (unsigned long long)sum.no_backend);
}

static void detach_all(void)
{
	for (int i = 0; i < nxsk; i++)
		xsk_fwd_stop(xsk[i]);
	nxsk = 0;
	for (int i = 0; i < nlinks; i++)
		close(links[i]);
	nlinks = 0;
	for (int i = 0; i < nrt_links; i++)
		bpf_link__destroy(rt_links[i]);
	nrt_links = 0;
	rt_pid = 0;
	if (msg_attached_map >= 0)
		bpf_prog_detach2(bpf_program__fd(skel->progs.fp_sk_msg), msg_attached_map, BPF_SK_MSG_VERDICT);
	msg_attached_map = -1;
}

/* Runs one command line; returns 0 when the owner asked us to quit. */
static int dispatch(char *line)
{
	line[strcspn(line, "\r\n")] = 0;
	switch (line[0]) {
	case 'U': case 'D': case 'G': cmd_map(line[0], line + 2); break;
	case 'B': cmd_batch(line + 2); break;
	case 'S': cmd_stats(); break;
	case 'X': cmd_xsk_stats(); break;
	case 'M': cmd_dump(line + 2); break;
	case 'Z': cmd_zero(line + 2); break;
	case 'P': cmd_prog_stats(); break;
	case 'T': cmd_test_run(line + 2); break;
	case 'A': cmd_attach(line + 2); break;
	case 'Q': return 0;
	default: printf("ERR unknown command\n");
	}
	return 1;
}

int main(int argc, char **argv)
{
	static char line[LINE_MAX_];
	struct ring_buffer *rb = NULL;
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
	int err;

	(void)argc;
	(void)argv;
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	setrlimit(RLIMIT_MEMLOCK, &rl);
	libbpf_set_print(NULL);
	ncpus = libbpf_num_possible_cpus();

	skel = fastpath__open();
	if (!skel) {
		printf("FAIL open: %s\n", strerror(errno));
		return 2;
	}
	err = fastpath__load(skel);
	if (err) {
		printf("FAIL load: %s\n", strerror(-err));
		fastpath__destroy(skel);
		return 2;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, NULL, NULL);
	if (rb && ring_buffer__add(rb, bpf_map__fd(skel->maps.conn_events), on_conn_event, NULL)) {
		printf("FAIL ring buffer: %s\n", strerror(errno));
		return 2;
	}
	rt_log = fcntl(3, F_GETFD) >= 0 ? fdopen(3, "w") : NULL;
	if (!rt_log)
		rt_log = stderr;
	printf("READY %d %d\n", FP_ABI_VERSION, ncpus);
	fflush(stdout);

	for (;;) {
		struct pollfd pfd[2] = { { .fd = 0, .events = POLLIN }, { .fd = rb ? ring_buffer__epoll_fd(rb) : -1, .events = POLLIN } };
		/* 100 ms: connection events are written without a wakeup until a quarter of the ring waits */
		if (poll(pfd, 2, 100) < 0 && errno != EINTR)
			break;
		if (rb)
			ring_buffer__consume(rb);
		rt_watch();
		if (pfd[0].revents & (POLLIN | POLLHUP)) {
			if (!fgets(line, sizeof(line), stdin))
				break; /* owner gone: clean up */
			if (!dispatch(line))
				goto out;
			/* answer everything already buffered before one flush */
			while (stdin->_IO_read_ptr < stdin->_IO_read_end) {
				if (!fgets(line, sizeof(line), stdin) || !dispatch(line))
					goto out;
			}
		}
		fflush(stdout);
	}
out:
	detach_all();
	ring_buffer__free(rb);
	fastpath__destroy(skel);
	printf("BYE\n");
	fflush(stdout);
	return 0;
}
