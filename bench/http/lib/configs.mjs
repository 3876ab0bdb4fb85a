// Config generators for the origin and the reference proxies. Everything is
// written into the run's temp dir; nothing outside it is touched.

/** 64-byte response body served by the origin. */
export const BODY = 'pilotfish-bench origin: a small fixed body of exactly 64 bytes.\n';

function nginxCommon(dir) {
  return `daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; multi_accept on; }
`;
}

function nginxHttpCommon(dir) {
  return `  access_log off;
  keepalive_timeout 120s;
  keepalive_requests 10000000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
`;
}

/**
 * Origin: nginx, one worker, fixed body; h1Port serves HTTP/1.1, h2Port h2c (prior
 * knowledge). With `mtls` also the mTLS port (as nginxProxy's), so `direct` over mTLS
 * shows what the load core can drive: the load generator's TLS ceiling.
 */
export function nginxOrigin({ dir, h1Port, h2Port, mtls }) {
  return `${nginxCommon(dir)}http {
${nginxHttpCommon(dir)}  default_type text/plain;
  server {
    listen 127.0.0.1:${h1Port} reuseport;
    listen 127.0.0.1:${h2Port} http2;
${mtls ? `    listen 127.0.0.1:${mtls.port} ssl http2;
${nginxMtls(mtls.pki)}` : ''}    location / { return 200 ${JSON.stringify(BODY)}; }
  }
}
`;
}

/** nginx's side of the mTLS scenarios: TLS 1.3 only, a client certificate from the bench CA required. */
function nginxMtls(pki) {
  return `    ssl_certificate ${pki.serverChain};
    ssl_certificate_key ${pki.serverKey};
    ssl_protocols TLSv1.3;
    ssl_client_certificate ${pki.ca};
    ssl_verify_client on;
    ssl_verify_depth 2;
`;
}

/**
 * nginx as the proxy under test: one worker, upstream keep-alive pool.
 * nginx 1.22 cannot serve HTTP/1.1 and h2c on one cleartext port, so h2c gets its own.
 */
export function nginxProxy({ dir, h1Port, h2Port, upstreamPort, mtls }) {
  const location = `    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }`;
  // mTLS: TLS 1.3 only, a client certificate from the bench CA required; HTTP/1.1 without
  // ALPN (wrk) and h2 by ALPN (h2load) on one port, as pilotfish's AUTO codec serves them.
  const tlsServer = mtls
    ? `  server {
    listen 127.0.0.1:${mtls.port} ssl http2;
${nginxMtls(mtls.pki)}${location}
  }
`
    : '';
  return `${nginxCommon(dir)}http {
${nginxHttpCommon(dir)}  upstream origin {
    server 127.0.0.1:${upstreamPort};
    keepalive 256;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
  }
  server {
    listen 127.0.0.1:${h1Port};
${location}
  }
  server {
    listen 127.0.0.1:${h2Port} http2;
${location}
  }
${tlsServer}}
`;
}

/** HAProxy: one thread; HTTP/1.1 and h2c (preface detection) on the same port. */
export function haproxy({ port, upstreamPort, mtls }) {
  // mTLS: TLS 1.3 only, client certificate verified against the bench CA, h2 or HTTP/1.1 by ALPN.
  const tlsFrontend = mtls
    ? `
frontend fe_mtls
  bind 127.0.0.1:${mtls.port} ssl crt ${mtls.pki.serverPem} ca-file ${mtls.pki.ca} verify required ssl-min-ver TLSv1.3 alpn h2,http/1.1
  default_backend be
`
    : '';
  return `global
  nbthread 1
  maxconn 4000

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always

frontend fe
  bind 127.0.0.1:${port}
  default_backend be

backend be
  server origin 127.0.0.1:${upstreamPort} maxconn 4000
${tlsFrontend}`;
}

/**
 * pilotfish: an Envoy v3 bootstrap. codec_type AUTO (HTTP/1.1 + h2c on one port),
 * one STATIC cluster. `upstreamH2` switches the cluster to HTTP/2 (h2c) upstream.
 */
export function pilotfishBootstrap({ port, adminPort, upstreamPort, upstreamH2 = false, mtls }) {
  const h2 = upstreamH2
    ? `    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
`
    : '';
  const hcm = (statPrefix) => `      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ${statPrefix}
          codec_type: AUTO
          route_config:
            name: bench
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: origin }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router`;
  return `node:
  id: bench
  cluster: bench
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: ${adminPort} }
static_resources:
  listeners:
  - name: bench
    address:
      socket_address: { address: 127.0.0.1, port_value: ${port} }
    filter_chains:
    - filters:
${hcm('bench')}
${mtls ? mtlsListener(mtls, hcm('bench_mtls')) : ''}  clusters:
  - name: origin
    type: STATIC
    connect_timeout: 1s
${h2}    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: ${upstreamPort} }
`;
}

/**
 * pilotfish's mTLS listener: a DownstreamTlsContext as a sidecar's inbound chain has one —
 * TLS 1.3 only, client certificate required and verified against the bench CA, the
 * codec's ALPN (h2, http/1.1).
 */
function mtlsListener(mtls, hcm) {
  return `  - name: bench_mtls
    address:
      socket_address: { address: 127.0.0.1, port_value: ${mtls.port} }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_params: { tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3 }
            tls_certificates:
            - certificate_chain: { filename: ${JSON.stringify(mtls.pki.serverChain)} }
              private_key: { filename: ${JSON.stringify(mtls.pki.serverKey)} }
            validation_context:
              trusted_ca: { filename: ${JSON.stringify(mtls.pki.ca)} }
      filters:
${hcm}
`;
}
