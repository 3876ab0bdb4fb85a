// The targets measured side by side. Each `start` returns { pid, h1Url, h2Url? } once
// the target answers correctly (status 200 and the origin's exact body). Given `mtls`
// ({ pki }), targets with `mtls: true` also serve an mTLS port and return `mtlsUrl`
// (HTTP/1.1 and h2 by ALPN on it) and `tls` (what a client negotiated there).
import { writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as cfg from './configs.mjs';
import { freePort, startPinned, waitReady } from './procs.mjs';
import { waitReadyTls } from './mtls.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, '..', '..', '..');
const PROXIES = join(here, '..', 'proxies');

/** Origin: nginx, one worker, on the load core. */
export async function startOrigin({ dir, core, mtls }) {
  const h1Port = await freePort(), h2Port = await freePort();
  const mtlsPort = mtls ? await freePort() : 0;
  const d = join(dir, 'origin');
  mkdirSync(d, { recursive: true });
  const conf = join(d, 'nginx.conf');
  writeFileSync(conf, cfg.nginxOrigin({ dir: d, h1Port, h2Port, mtls: mtls ? { port: mtlsPort, pki: mtls.pki } : undefined }));
  const proc = startPinned({ core, cmd: 'nginx', args: ['-p', d, '-c', conf, '-e', join(d, 'error.log')], logFile: join(d, 'out.log') });
  const h1Url = `http://127.0.0.1:${h1Port}/`, h2Url = `http://127.0.0.1:${h2Port}/`;
  await waitReady({ url: h1Url, body: cfg.BODY, proc });
  await waitReady({ url: h2Url, body: cfg.BODY, h2: true, proc });
  return { proc, pid: proc.pid, h1Port, h2Port, h1Url, h2Url, ...(await tlsReady({ mtls, port: mtlsPort, proc })) };
}

function nodeTarget(script, { servesMtls = false, servesH2c = false, args = [], nodeFlags = [] } = {}) {
  return async ({ dir, core, origin, name, nodeArgs = [], env, mtls }) => {
    const port = await freePort();
    const mtlsPort = mtls && servesMtls ? await freePort() : 0;
    const h2Port = servesH2c ? await freePort() : 0;
    const tlsArgs = mtlsPort ? ['--mtls-port', String(mtlsPort), '--ca', mtls.pki.ca, '--cert', mtls.pki.serverChain, '--key', mtls.pki.serverKey] : [];
    const h2Args = h2Port ? ['--h2-port', String(h2Port)] : [];
    const proc = startPinned({
      env,
      core, cmd: process.execPath,
      args: [...nodeFlags, ...nodeArgs, join(PROXIES, script), '--port', String(port), '--upstream-port', String(origin.h1Port), ...tlsArgs, ...h2Args, ...args],
      logFile: join(dir, `${name}.log`),
    });
    const h1Url = `http://127.0.0.1:${port}/`;
    await waitReady({ url: h1Url, body: cfg.BODY, proc });
    const h2 = {};
    if (h2Port) {
      h2.h2Url = `http://127.0.0.1:${h2Port}/`;
      await waitReady({ url: h2.h2Url, body: cfg.BODY, h2: true, proc });
    }
    if (!mtlsPort) return { proc, pid: proc.pid, h1Url, ...h2 };
    const mtlsUrl = `https://127.0.0.1:${mtlsPort}/`;
    return { proc, pid: proc.pid, h1Url, ...h2, mtlsUrl, tls: await waitReadyTls({ url: mtlsUrl, body: cfg.BODY, pki: mtls.pki, proc }) };
  };
}

/** Serves the mTLS port too? Readiness over TLS with the client certificate, and what was negotiated. */
async function tlsReady({ mtls, port, proc }) {
  if (!mtls) return {};
  const mtlsUrl = `https://127.0.0.1:${port}/`;
  const tls = await waitReadyTls({ url: mtlsUrl, body: cfg.BODY, pki: mtls.pki, proc });
  const tlsH2 = await waitReadyTls({ url: mtlsUrl, body: cfg.BODY, pki: mtls.pki, h2: true, proc });
  if (tlsH2.alpn !== 'h2') throw new Error(`h2 over TLS: ALPN chose ${tlsH2.alpn}`);
  return { mtlsUrl, tls };
}

/**
 * The Istio-shaped sidecar bootstrap (lib/istio-bootstrap.ts, from e2e/fixtures/istio's
 * generators), as JSON text: a TypeScript module, so it runs under tsx in a child process.
 */
function istioBootstrap({ port, adminPort, upstreamPort, accessLog }) {
  const args = ['--import', 'tsx', join(here, 'istio-bootstrap.ts'), '--port', String(port), '--admin-port', String(adminPort), '--upstream-port', String(upstreamPort)];
  return execFileSync(process.execPath, accessLog ? [...args, '--access-log'] : args, { cwd: REPO, encoding: 'utf8' });
}

function pilotfishTarget({ upstreamH2, http1, http2, istio }) {
  return async ({ dir, core, origin, name, nodeArgs = [], env: extraEnv, pilotfishBin, mtls }) => {
    // PILOTFISH_HTTP1 picks the HTTP/1.1 path (proxy/src/http1/raw-chain.ts); unset = the proxy's default.
    // Unset for `pilotfish` even when the harness's own environment sets it.
    const env = { ...process.env, ...extraEnv };
    if (http1) env.PILOTFISH_HTTP1 = http1;
    else delete env.PILOTFISH_HTTP1;
    // PILOTFISH_HTTP2 picks the HTTP/2 downstream objects (proxy/src/http2/streams.ts): core (default) or node's compat layer.
    if (http2) env.PILOTFISH_HTTP2 = http2;
    else delete env.PILOTFISH_HTTP2;
    const bin = pilotfishBin ? resolve(pilotfishBin) : join(REPO, 'bin', 'pilotfish.js');
    if (!existsSync(bin)) throw new Error(`${bin} does not exist yet`);
    const port = await freePort(), adminPort = await freePort();
    const mtlsPort = mtls ? await freePort() : 0;
    const conf = join(dir, istio ? `${name}.json` : `${name}.yaml`);
    writeFileSync(conf, istio
      ? istioBootstrap({ port, adminPort, upstreamPort: origin.h1Port, accessLog: istio === 'access-log' })
      : cfg.pilotfishBootstrap({
        port, adminPort, upstreamPort: upstreamH2 ? origin.h2Port : origin.h1Port, upstreamH2,
        mtls: mtls ? { port: mtlsPort, pki: mtls.pki } : undefined,
      }));
    const proc = startPinned({
      core, cmd: process.execPath, args: [...nodeArgs, bin, 'proxy', '--config', conf],
      logFile: join(dir, `${name}.log`), cwd: REPO, env,
    });
    const h1Url = `http://127.0.0.1:${port}/`;
    await waitReady({ url: h1Url, body: cfg.BODY, proc });
    await waitReady({ url: h1Url, body: cfg.BODY, h2: true, proc });
    return { proc, pid: proc.pid, h1Url, h2Url: h1Url, adminUrl: `http://127.0.0.1:${adminPort}/`, config: conf, ...(await tlsReady({ mtls, port: mtlsPort, proc })) };
  };
}

export const TARGETS = {
  direct: {
    h2c: true,
    mtls: true,
    describe: 'load generator straight to the origin (no proxy); over mTLS: the origin terminates TLS itself, what the load core can drive',
    start: async ({ origin }) => ({ proc: null, pid: null, h1Url: origin.h1Url, h2Url: origin.h2Url, mtlsUrl: origin.mtlsUrl, tls: origin.tls }),
  },
  nginx: {
    h2c: true,
    mtls: true,
    describe: 'nginx 1 worker, upstream keepalive 256 (h2c on a second port: nginx 1.22 cannot mix on cleartext); mTLS: ssl_verify_client on, TLSv1.3 only, `listen ssl http2`',
    start: async ({ dir, core, origin, mtls }) => {
      const h1Port = await freePort(), h2Port = await freePort();
      const mtlsPort = mtls ? await freePort() : 0;
      const d = join(dir, 'nginx');
      mkdirSync(d, { recursive: true });
      const conf = join(d, 'nginx.conf');
      writeFileSync(conf, cfg.nginxProxy({ dir: d, h1Port, h2Port, upstreamPort: origin.h1Port, mtls: mtls ? { port: mtlsPort, pki: mtls.pki } : undefined }));
      const proc = startPinned({ core, cmd: 'nginx', args: ['-p', d, '-c', conf, '-e', join(d, 'error.log')], logFile: join(d, 'out.log') });
      const h1Url = `http://127.0.0.1:${h1Port}/`, h2Url = `http://127.0.0.1:${h2Port}/`;
      await waitReady({ url: h1Url, body: cfg.BODY, proc });
      await waitReady({ url: h2Url, body: cfg.BODY, h2: true, proc });
      return { proc, pid: proc.pid, h1Url, h2Url, ...(await tlsReady({ mtls, port: mtlsPort, proc })) };
    },
  },
  haproxy: {
    h2c: true,
    mtls: true,
    describe: 'HAProxy nbthread 1, http-reuse always, h2c by preface detection on the same port; mTLS: verify required, ssl-min-ver TLSv1.3, alpn h2,http/1.1',
    start: async ({ dir, core, origin, mtls }) => {
      const port = await freePort();
      const mtlsPort = mtls ? await freePort() : 0;
      const conf = join(dir, 'haproxy.cfg');
      writeFileSync(conf, cfg.haproxy({ port, upstreamPort: origin.h1Port, mtls: mtls ? { port: mtlsPort, pki: mtls.pki } : undefined }));
      const proc = startPinned({ core, cmd: 'haproxy', args: ['-db', '-f', conf], logFile: join(dir, 'haproxy.log') });
      const h1Url = `http://127.0.0.1:${port}/`;
      await waitReady({ url: h1Url, body: cfg.BODY, proc });
      await waitReady({ url: h1Url, body: cfg.BODY, h2: true, proc });
      return { proc, pid: proc.pid, h1Url, h2Url: h1Url, ...(await tlsReady({ mtls, port: mtlsPort, proc })) };
    },
  },
  baseline: {
    h2c: false,
    describe: 'thinnest node:http + undici Pool.stream proxy (bench/http/proxies/baseline.mjs)',
    start: nodeTarget('baseline.mjs'),
  },
  'node-http-proxy': {
    h2c: false,
    describe: 'http-proxy@1 with a keep-alive agent (maxSockets 256)',
    start: nodeTarget('node-http-proxy.mjs'),
  },
  fastify: {
    h2c: false,
    describe: '@fastify/http-proxy defaults (undici via @fastify/reply-from), logger off',
    start: nodeTarget('fastify.mjs'),
  },
  'raw-h1': {
    h2c: true,
    mtls: 'h1',
    describe: 'EXPERIMENT: Node floor without node:http/undici: raw net sockets, header block forwarded as bytes, Content-Length only (bench/http/proxies/raw-h1.mjs); h2c: node:http2\'s core API, each stream relayed to the same raw upstream sockets (raw-h2.mjs); mTLS (HTTP/1.1 only): node:tls server, TLS 1.3, client certificate required, OpenSSL\'s chain check only',
    start: nodeTarget('raw-h1.mjs', { servesMtls: true, servesH2c: true }),
  },
  'raw-h1-heap': {
    h2c: true,
    mtls: 'h1',
    describe: 'EXPERIMENT: raw-h1 with the V8 heap settings bin/pilotfish.js gives pilotfish (young generation capped at 4 MB per semi-space, old generation growing by half): Node\'s floor for the memory figures under the same heap policy',
    start: nodeTarget('raw-h1.mjs', { servesMtls: true, servesH2c: true, nodeFlags: ['--max-semi-space-size=4', '--heap-growing-percent=50'] }),
  },
  'raw-h1-batched': {
    h2c: false,
    mtls: 'h1',
    describe: 'EXPERIMENT: raw-h1 with --batch-writes: the writes of one event-loop turn held (corked) until its I/O callbacks are done, so peers are woken once per turn',
    start: nodeTarget('raw-h1.mjs', { servesMtls: true, args: ['--batch-writes'] }),
  },
  pilotfish: {
    h2c: true,
    mtls: true,
    describe: 'node bin/pilotfish.js proxy --config <Envoy bootstrap>, codec_type AUTO, HTTP/1.1 upstream, the default HTTP/1.1 path (PILOTFISH_HTTP1 unset); mTLS: a second listener with a DownstreamTlsContext (TLS 1.3 only, require_client_certificate, trusted_ca)',
    start: pilotfishTarget({ upstreamH2: false }),
  },
  'pilotfish-node': {
    h2c: true,
    mtls: true,
    describe: 'pilotfish with PILOTFISH_HTTP1=node: HTTP/1.1 through node:http + undici (the path before the raw one; for before/after)',
    start: pilotfishTarget({ upstreamH2: false, http1: 'node' }),
  },
  'pilotfish-raw': {
    h2c: true,
    mtls: true,
    describe: 'pilotfish with PILOTFISH_HTTP1=raw: HTTP/1.1 on raw sockets, llhttp (wasm), raw upstream pool; h2c still node:http2',
    start: pilotfishTarget({ upstreamH2: false, http1: 'raw' }),
  },
  'pilotfish-istio': {
    h2c: true,
    describe: 'pilotfish under an Istio-shaped sidecar config (lib/istio-bootstrap.ts: istiod\'s outbound 0.0.0.0_9080 listener with listener filters, tracing, Istio\'s HTTP filters metadata_exchange, grpc_stats, alpn, fault, cors, istio.stats; route configuration 9080 with Bookinfo\'s reviews split and default retries; Istio\'s stats_config; default profile: no access log), HTTP/1.1 upstream',
    start: pilotfishTarget({ upstreamH2: false, istio: 'default' }),
  },
  'pilotfish-istio-log': {
    h2c: true,
    describe: 'pilotfish-istio with the access log of Istio\'s demo profile (meshConfig.accessLogFile /dev/stdout, Istio\'s text format; stdout goes to the target\'s log file)',
    start: pilotfishTarget({ upstreamH2: false, istio: 'access-log' }),
  },
  'pilotfish-h2compat': {
    h2c: true,
    mtls: true,
    describe: 'pilotfish with PILOTFISH_HTTP2=node: HTTP/2 downstreams through node\'s http2 compat layer (the path before the core-API one; for before/after)',
    start: pilotfishTarget({ upstreamH2: false, http2: 'node' }),
  },
  'pilotfish-h2up': {
    h2c: true,
    describe: 'pilotfish with HTTP/2 (h2c) upstream via HttpProtocolOptions.explicit_http_config: the core-API HTTP/2 pool (proxy/src/upstream/h2-pool.ts)',
    start: pilotfishTarget({ upstreamH2: true }),
  },
  'pilotfish-h2up-node': {
    h2c: true,
    describe: 'pilotfish-h2up with PILOTFISH_HTTP1=node: the HTTP/2 upstream through undici\'s Client (before/after for the core-API pool)',
    start: pilotfishTarget({ upstreamH2: true, http1: 'node' }),
  },
};

export const DEFAULT_TARGETS = ['direct', 'nginx', 'haproxy', 'baseline', 'node-http-proxy', 'fastify', 'pilotfish', 'pilotfish-node'];
