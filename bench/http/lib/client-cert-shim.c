/*
 * LD_PRELOAD shim for the mTLS scenarios: wrk and h2load cannot present a client
 * certificate, and every mTLS server here (nginx ssl_verify_client on, HAProxy verify
 * required, pilotfish require_client_certificate) refuses a client without one. Both
 * tools link the system libssl dynamically, so this wraps SSL_CTX_new: every context
 * they create gets the certificate chain and key named by PF_BENCH_CLIENT_CERT /
 * PF_BENCH_CLIENT_KEY. The tools' own TLS code (handshake, reads, writes) is untouched,
 * so the load generator costs what it costs without the shim.
 *
 * No OpenSSL headers or link: the few functions needed are found with dlsym, so building
 * it needs only a C compiler (run.mjs compiles it into the run's temp dir).
 * A context that cannot take the certificate is a fatal error: a load generator silently
 * running without its certificate would measure refusals, not requests.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_method_st SSL_METHOD;
typedef struct ossl_lib_ctx_st OSSL_LIB_CTX;

#define SSL_FILETYPE_PEM 1

static int (*use_chain)(SSL_CTX *, const char *);
static int (*use_key)(SSL_CTX *, const char *, int);
static int (*check_key)(const SSL_CTX *);

static SSL_CTX *with_client_cert(SSL_CTX *ctx) {
  const char *cert = getenv("PF_BENCH_CLIENT_CERT");
  const char *key = getenv("PF_BENCH_CLIENT_KEY");
  if (ctx == NULL || cert == NULL || key == NULL) return ctx;
  if (use_chain == NULL) {
    use_chain = (int (*)(SSL_CTX *, const char *))dlsym(RTLD_DEFAULT, "SSL_CTX_use_certificate_chain_file");
    use_key = (int (*)(SSL_CTX *, const char *, int))dlsym(RTLD_DEFAULT, "SSL_CTX_use_PrivateKey_file");
    check_key = (int (*)(const SSL_CTX *))dlsym(RTLD_DEFAULT, "SSL_CTX_check_private_key");
  }
  if (use_chain == NULL || use_key == NULL || check_key == NULL ||
      use_chain(ctx, cert) != 1 || use_key(ctx, key, SSL_FILETYPE_PEM) != 1 || check_key(ctx) != 1) {
    fprintf(stderr, "client-cert-shim: cannot install client certificate %s / key %s\n", cert, key);
    exit(97);
  }
  return ctx;
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method) {
  static SSL_CTX *(*real)(const SSL_METHOD *);
  if (real == NULL) real = (SSL_CTX * (*)(const SSL_METHOD *)) dlsym(RTLD_NEXT, "SSL_CTX_new");
  return with_client_cert(real(method));
}

/* OpenSSL 3's SSL_CTX_new is a wrapper of SSL_CTX_new_ex; a tool may call either. When
 * the inner call is interposed too, the certificate is installed twice: the second
 * installation replaces the first, same files, no harm. */
SSL_CTX *SSL_CTX_new_ex(OSSL_LIB_CTX *libctx, const char *propq, const SSL_METHOD *method) {
  static SSL_CTX *(*real)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *);
  if (real == NULL) real = (SSL_CTX * (*)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *)) dlsym(RTLD_NEXT, "SSL_CTX_new_ex");
  return with_client_cert(real(libctx, propq, method));
}
