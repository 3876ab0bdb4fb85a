/* SPDX-License-Identifier: Apache-2.0 */
/*
 * original_dst: the two socket options Node does not expose, for the proxy's
 * catch-all listeners.
 *
 *   originalDst(fd)  -> { address, port, family: 4|6 } | null
 *       getsockopt(SOL_IP, SO_ORIGINAL_DST) (or SOL_IPV6, IP6T_SO_ORIGINAL_DST for
 *       native IPv6 sockets): where the client meant to go before iptables REDIRECT
 *       (conntrack), or before pilotfish's cgroup connect hook (its cgroup/getsockopt
 *       program answers the same call). null when the connection was not redirected
 *       (no answer, or the answer is the socket's own local address).
 *   socketCookie(fd) -> bigint | null   SO_COOKIE, the kernel's id of the socket.
 *
 * Plain C against node_api.h (N-API 8): one binary works across Node versions, and
 * no npm build dependency is needed. Errors that mean "not redirected" are null;
 * anything else (a closed fd, not a socket) throws, with errno's name as `code`.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h */
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */
#endif
#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

static napi_value throw_errno(napi_env env, const char *what, int err)
{
	char msg[128];
	const char *code = err == EBADF ? "EBADF" : err == ENOTSOCK ? "ENOTSOCK" : err == EINVAL ? "EINVAL" : "ESYSCALL";
	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
	napi_throw_error(env, code, msg);
	return NULL;
}

/* Reads args[0] as a non-negative integer fd; throws a TypeError otherwise. */
static int fd_arg(napi_env env, napi_callback_info info, int *fd)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_valuetype t;
	int32_t v;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    napi_typeof(env, argv[0], &t) != napi_ok || t != napi_number ||
	    napi_get_value_int32(env, argv[0], &v) != napi_ok || v < 0) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fd must be a non-negative integer");
		return -1;
	}
	*fd = v;
	return 0;
}

/* The errors that mean "this connection has no original destination". */
static int is_miss(int err)
{
	return err == ENOENT || err == ENOPROTOOPT || err == ENOTCONN || err == EOPNOTSUPP;
}

static napi_value result(napi_env env, const char *addr, unsigned port, int family)
{
	napi_value obj, a, p, f;
	napi_create_object(env, &obj);
	napi_create_string_utf8(env, addr, NAPI_AUTO_LENGTH, &a);
	napi_create_uint32(env, port, &p);
	napi_create_uint32(env, (uint32_t)family, &f);
	napi_set_named_property(env, obj, "address", a);
	napi_set_named_property(env, obj, "port", p);
	napi_set_named_property(env, obj, "family", f);
	return obj;
}

static napi_value null_value(napi_env env)
{
	napi_value n;
	napi_get_null(env, &n);
	return n;
}

/*
 * Once the nat table is in use, conntrack tracks every connection, and SO_ORIGINAL_DST
 * then answers for unredirected ones too: with the address they arrived at. That is no
 * restoration, so it is reported like a miss.
 */
static int same_as_local4(const struct sockaddr_storage *local, const struct sockaddr_in *dst)
{
	if (local->ss_family == AF_INET) {
		const struct sockaddr_in *l = (const struct sockaddr_in *)local;
		return l->sin_port == dst->sin_port && l->sin_addr.s_addr == dst->sin_addr.s_addr;
	} else {
		const struct sockaddr_in6 *l = (const struct sockaddr_in6 *)local;
		return l->sin6_port == dst->sin_port && !memcmp(&l->sin6_addr.s6_addr[12], &dst->sin_addr, 4);
	}
}

static napi_value original_dst(napi_env env, napi_callback_info info)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	char text[INET6_ADDRSTRLEN];
	int fd, v4;

	if (fd_arg(env, info, &fd))
		return NULL;
	/*
	 * Which option to ask: IPv4 sockets, and IPv4 connections accepted on a dual-stack
	 * socket (v4-mapped), keep IPv4 conntrack state and answer SOL_IP; native IPv6
	 * sockets answer SOL_IPV6. This is what Envoy's original_dst filter does too.
	 */
	if (getsockname(fd, (struct sockaddr *)&local, &len))
		return is_miss(errno) ? null_value(env) : throw_errno(env, "getsockname", errno);
	v4 = local.ss_family == AF_INET ||
	     (local.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr));
	if (local.ss_family != AF_INET && local.ss_family != AF_INET6)
		return null_value(env);

	if (v4) {
		struct sockaddr_in dst;
		socklen_t dl = sizeof(dst);
		memset(&dst, 0, sizeof(dst));
		if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dl))
			return is_miss(errno) ? null_value(env) : throw_errno(env, "getsockopt(SO_ORIGINAL_DST)", errno);
		if (dst.sin_family != AF_INET || !inet_ntop(AF_INET, &dst.sin_addr, text, sizeof(text)))
			return null_value(env);
		if (same_as_local4(&local, &dst))
			return null_value(env);
		return result(env, text, ntohs(dst.sin_port), 4);
	} else {
		struct sockaddr_in6 dst;
		socklen_t dl = sizeof(dst);
		memset(&dst, 0, sizeof(dst));
		if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &dl))
			return is_miss(errno) ? null_value(env) : throw_errno(env, "getsockopt(IP6T_SO_ORIGINAL_DST)", errno);
		if (dst.sin6_family != AF_INET6 || !inet_ntop(AF_INET6, &dst.sin6_addr, text, sizeof(text)))
			return null_value(env);
		if (dst.sin6_port == ((struct sockaddr_in6 *)&local)->sin6_port &&
		    IN6_ARE_ADDR_EQUAL(&dst.sin6_addr, &((struct sockaddr_in6 *)&local)->sin6_addr))
			return null_value(env);
		return result(env, text, ntohs(dst.sin6_port), 6);
	}
}

static napi_value socket_cookie(napi_env env, napi_callback_info info)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	napi_value out;
	int fd;

	if (fd_arg(env, info, &fd))
		return NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len))
		return errno == ENOPROTOOPT ? null_value(env) : throw_errno(env, "getsockopt(SO_COOKIE)", errno);
	napi_create_bigint_uint64(env, cookie, &out);
	return out;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */)
{
	napi_value f;
	napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &f);
	napi_set_named_property(env, exports, "originalDst", f);
	napi_create_function(env, "socketCookie", NAPI_AUTO_LENGTH, socket_cookie, NULL, &f);
	napi_set_named_property(env, exports, "socketCookie", f);
	return exports;
}
