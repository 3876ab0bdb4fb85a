// The targets measured side by side. Each `start` returns { pid, h1Url, h2Url? } once
// the target answers correctly (status 200 and the origin's exact body).
import { writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as cfg from './configs.mjs';
import { freePort, startPinned, waitReady } from './procs.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, '..', '..', '..');
const PROXIES = join(here, '..', 'proxies');

/** Origin: nginx, one worker, on the load core. */
export async function startOrigin({ dir, core }) {
  const h1Port = await freePort(), h2Port = await freePort();
  const d = join(dir, 'origin');
  mkdirSync(d, { recursive: true });
  const conf = join(d, 'nginx.conf');
  writeFileSync(conf, cfg.nginxOrigin({ dir: d, h1Port, h2Port }));
  const proc = startPinned({ core, cmd: 'nginx', args: ['-p', d, '-c', conf, '-e', join(d, 'error.log')], logFile: join(d, 'out.log') });
  const h1Url = `http://127.0.0.1:${h1Port}/`, h2Url = `http://127.0.0.1:${h2Port}/`;
  await waitReady({ url: h1Url, body: cfg.BODY, proc });
  await waitReady({ url: h2Url, body: cfg.BODY, h2: true, proc });
  return { proc, pid: proc.pid, h1Port, h2Port, h1Url, h2Url };
}

function nodeTarget(script) {
  return async ({ dir, core, origin, name, nodeArgs = [], env }) => {
    const port = await freePort();
    const proc = startPinned({
      env,
      core, cmd: process.execPath,
      args: [...nodeArgs, join(PROXIES, script), '--port', String(port), '--upstream-port', String(origin.h1Port)],
      logFile: join(dir, `${name}.log`),
    });
    const h1Url = `http://127.0.0.1:${port}/`;
    await waitReady({ url: h1Url, body: cfg.BODY, proc });
    return { proc, pid: proc.pid, h1Url };
  };
}

function pilotfishTarget({ upstreamH2, http1 }) {
  return async ({ dir, core, origin, name, nodeArgs = [], env: extraEnv, pilotfishBin }) => {
    // PILOTFISH_HTTP1 picks the HTTP/1.1 path (proxy/src/http1/raw-chain.ts); unset = the proxy's default.
    const env = http1 ? { ...process.env, ...extraEnv, PILOTFISH_HTTP1: http1 } : extraEnv;
    const bin = pilotfishBin ? resolve(pilotfishBin) : join(REPO, 'bin', 'pilotfish.js');
    if (!existsSync(bin)) throw new Error(`${bin} does not exist yet`);
    const port = await freePort(), adminPort = await freePort();
    const conf = join(dir, `${name}.yaml`);
    writeFileSync(conf, cfg.pilotfishBootstrap({
      port, adminPort, upstreamPort: upstreamH2 ? origin.h2Port : origin.h1Port, upstreamH2,
    }));
    const proc = startPinned({
      core, cmd: process.execPath, args: [...nodeArgs, bin, 'proxy', '--config', conf],
      logFile: join(dir, `${name}.log`), cwd: REPO, env,
    });
    const h1Url = `http://127.0.0.1:${port}/`;
    await waitReady({ url: h1Url, body: cfg.BODY, proc });
    await waitReady({ url: h1Url, body: cfg.BODY, h2: true, proc });
    return { proc, pid: proc.pid, h1Url, h2Url: h1Url, adminUrl: `http://127.0.0.1:${adminPort}/`, config: conf };
  };
}

export const TARGETS = {
  direct: {
    h2c: true,
    describe: 'load generator straight to the origin (no proxy)',
    start: async ({ origin }) => ({ proc: null, pid: null, h1Url: origin.h1Url, h2Url: origin.h2Url }),
  },
  nginx: {
    h2c: true,
    describe: 'nginx 1 worker, upstream keepalive 256 (h2c on a second port: nginx 1.22 cannot mix on cleartext)',
    start: async ({ dir, core, origin }) => {
      const h1Port = await freePort(), h2Port = await freePort();
      const d = join(dir, 'nginx');
      mkdirSync(d, { recursive: true });
      const conf = join(d, 'nginx.conf');
      writeFileSync(conf, cfg.nginxProxy({ dir: d, h1Port, h2Port, upstreamPort: origin.h1Port }));
      const proc = startPinned({ core, cmd: 'nginx', args: ['-p', d, '-c', conf, '-e', join(d, 'error.log')], logFile: join(d, 'out.log') });
      const h1Url = `http://127.0.0.1:${h1Port}/`, h2Url = `http://127.0.0.1:${h2Port}/`;
      await waitReady({ url: h1Url, body: cfg.BODY, proc });
      await waitReady({ url: h2Url, body: cfg.BODY, h2: true, proc });
      return { proc, pid: proc.pid, h1Url, h2Url };
    },
  },
  haproxy: {
    h2c: true,
    describe: 'HAProxy nbthread 1, http-reuse always, h2c by preface detection on the same port',
    start: async ({ dir, core, origin }) => {
      const port = await freePort();
      const conf = join(dir, 'haproxy.cfg');
      writeFileSync(conf, cfg.haproxy({ port, upstreamPort: origin.h1Port }));
      const proc = startPinned({ core, cmd: 'haproxy', args: ['-db', '-f', conf], logFile: join(dir, 'haproxy.log') });
      const h1Url = `http://127.0.0.1:${port}/`;
      await waitReady({ url: h1Url, body: cfg.BODY, proc });
      await waitReady({ url: h1Url, body: cfg.BODY, h2: true, proc });
      return { proc, pid: proc.pid, h1Url, h2Url: h1Url };
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
    h2c: false,
    describe: 'EXPERIMENT: Node floor without node:http/undici: raw net sockets, header block forwarded as bytes, Content-Length only (bench/http/proxies/raw-h1.mjs)',
    start: nodeTarget('raw-h1.mjs'),
  },
  pilotfish: {
    h2c: true,
    describe: 'node bin/pilotfish.js proxy --config <Envoy bootstrap>, codec_type AUTO, HTTP/1.1 upstream, node:http + undici (PILOTFISH_HTTP1=node)',
    start: pilotfishTarget({ upstreamH2: false, http1: 'node' }),
  },
  'pilotfish-raw': {
    h2c: true,
    describe: 'pilotfish with PILOTFISH_HTTP1=raw: HTTP/1.1 on raw sockets, llhttp (wasm), raw upstream pool; h2c still node:http2',
    start: pilotfishTarget({ upstreamH2: false, http1: 'raw' }),
  },
  'pilotfish-h2up': {
    h2c: true,
    describe: 'pilotfish with HTTP/2 (h2c) upstream via HttpProtocolOptions.explicit_http_config',
    start: pilotfishTarget({ upstreamH2: true }),
  },
};

export const DEFAULT_TARGETS = ['direct', 'nginx', 'haproxy', 'baseline', 'node-http-proxy', 'fastify', 'pilotfish', 'pilotfish-raw'];
