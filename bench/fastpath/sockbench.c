/*
 * Loopback request/response and streaming between two processes, for measuring the
 * sockmap short-cut (bench/fastpath/run.ts). Plain blocking sockets, one thread per
 * connection: the point is the kernel path, not the event loop.
 *
 *   sockbench server PORT
 *   sockbench rr PORT CONNS SECONDS SIZE      -> "rr <req/s> <p50_us> <p99_us> <cpu_s>"
 *   sockbench stream PORT SECONDS CHUNK        -> "stream <MB/s> <cpu_s>"
 *   sockbench cserver PORT                     the peer of cps
 *   sockbench cps PORT SECONDS RATE            -> "cps <conn/s> <failed> <cpu_s>"
 *       one connection per exchange (connect, 1 byte each way, the server closes first so
 *       TIME_WAIT stays on its side); RATE connections/s paced, 0 = as fast as possible
 * cpu_s is the client's own user+system time (loopback receive work runs in it too).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int full_read(int fd, char *b, size_t n)
{
	while (n) {
		ssize_t r = read(fd, b, n);
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int full_write(int fd, const char *b, size_t n)
{
	while (n) {
		ssize_t r = write(fd, b, n);
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* first byte: 'E' + 4-byte size -> echo messages of that size; 'S' -> sink; 'C' -> one byte back, close */
static void *serve(void *arg)
{
	int fd = (int)(long)arg, one = 1;
	static __thread char buf[1 << 16];
	char mode;
	unsigned size;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (full_read(fd, &mode, 1) == 0) {
		if (mode == 'E' && full_read(fd, (char *)&size, 4) == 0 && size <= sizeof(buf)) {
			while (full_read(fd, buf, size) == 0 && full_write(fd, buf, size) == 0)
				;
		} else if (mode == 'C') {
			full_write(fd, "c", 1);
		} else if (mode == 'S') {
			while (read(fd, buf, sizeof(buf)) > 0)
				;
		}
	}
	close(fd);
	return NULL;
}

static int dial(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

struct rr { int port; unsigned size; double secs; long n; float *lat; long cap; };

static void *rr_run(void *arg)
{
	struct rr *r = arg;
	int fd = dial(r->port);
	char *buf = calloc(1, r->size);
	char hdr[5] = { 'E' };
	double end;

	memcpy(hdr + 1, &r->size, 4);
	full_write(fd, hdr, 5);
	end = now() + r->secs;
	while (r->n < r->cap) {
		double t0 = now();
		if (t0 >= end || full_write(fd, buf, r->size) || full_read(fd, buf, r->size))
			break;
		r->lat[r->n++] = (float)((now() - t0) * 1e6);
	}
	close(fd);
	free(buf);
	return NULL;
}

static int cmpf(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "cserver")) {
		/* the cps peer: one thread, accept -> 1 byte each way -> close (no thread per connection) */
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2])) };
		int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
		char b;
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1024)) {
			perror("listen");
			return 1;
		}
		printf("READY\n");
		fflush(stdout);
		for (;;) {
			int fd = accept(l, NULL, NULL);
			if (fd < 0)
				continue;
			if (read(fd, &b, 1) == 1)
				full_write(fd, "c", 1);
			close(fd);
		}
	}
	if (argc >= 3 && !strcmp(argv[1], "server")) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2])) };
		int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 128)) {
			perror("listen");
			return 1;
		}
		printf("READY\n");
		fflush(stdout);
		for (;;) {
			int fd = accept(l, NULL, NULL);
			pthread_t t;
			if (fd < 0)
				continue;
			pthread_create(&t, NULL, serve, (void *)(long)fd);
			pthread_detach(t);
		}
	}
	if (argc >= 6 && !strcmp(argv[1], "rr")) {
		int conns = atoi(argv[3]);
		struct rr *r = calloc((size_t)conns, sizeof(*r));
		pthread_t *th = calloc((size_t)conns, sizeof(*th));
		long total = 0, k = 0;
		float *all;
		for (int i = 0; i < conns; i++) {
			r[i] = (struct rr){ .port = atoi(argv[2]), .size = (unsigned)atoi(argv[5]), .secs = atof(argv[4]), .cap = 20000000 };
			r[i].lat = malloc(sizeof(float) * (size_t)r[i].cap);
			pthread_create(&th[i], NULL, rr_run, &r[i]);
		}
		for (int i = 0; i < conns; i++) {
			pthread_join(th[i], NULL);
			total += r[i].n;
		}
		all = malloc(sizeof(float) * (size_t)(total ? total : 1));
		for (int i = 0; i < conns; i++)
			for (long j = 0; j < r[i].n; j++)
				all[k++] = r[i].lat[j];
		qsort(all, (size_t)total, sizeof(float), cmpf);
		printf("rr %.0f %.1f %.1f %.3f\n", total / atof(argv[4]), total ? all[total / 2] : 0,
		       total ? all[total * 99 / 100] : 0, self_cpu());
		return 0;
	}
	if (argc >= 5 && !strcmp(argv[1], "stream")) {
		int fd = dial(atoi(argv[2]));
		size_t chunk = (size_t)atoi(argv[4]);
		char *buf = calloc(1, chunk);
		double start, end;
		long long bytes = 0;
		full_write(fd, "S", 1);
		start = now();
		end = start + atof(argv[3]);
		while (now() < end && full_write(fd, buf, chunk) == 0)
			bytes += (long long)chunk;
		printf("stream %.1f %.3f\n", bytes / (now() - start) / 1e6, self_cpu());
		close(fd);
		return 0;
	}
	if (argc >= 5 && !strcmp(argv[1], "cps")) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2])) };
		double secs = atof(argv[3]), rate = atof(argv[4]), start, end, next;
		long n = 0, failed = 0;
		char b;
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		start = now();
		end = start + secs;
		next = start;
		while (now() < end) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			if (connect(fd, (struct sockaddr *)&a, sizeof(a)) || full_write(fd, "C", 1) || full_read(fd, &b, 1))
				failed++;
			else
				n++;
			while (read(fd, &b, 1) > 0) /* until the server's FIN */
				;
			close(fd);
			if (rate > 0) {
				next += 1.0 / rate;
				double d = next - now();
				if (d > 0) {
					struct timespec ts = { (time_t)d, (long)((d - (double)(time_t)d) * 1e9) };
					nanosleep(&ts, NULL);
				}
			}
		}
		printf("cps %.0f %ld %.3f\n", n / (now() - start), failed, self_cpu());
		return 0;
	}
	fprintf(stderr, "usage: sockbench server PORT | cserver PORT | rr PORT CONNS SECONDS SIZE | stream PORT SECONDS CHUNK | cps PORT SECONDS RATE\n");
	return 2;
}
