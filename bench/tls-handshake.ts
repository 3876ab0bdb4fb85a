/**
 * TLS handshake benchmark (node --import tsx bench/tls-handshake.ts [--seconds N] [--concurrency C]).
 *
 * The server runs in this process (one thread = one core); a forked child process drives
 * connections from the other core. For each scenario we count completed handshakes (the
 * client gets one byte, written only after the server accepted - and for mTLS verified -
 * the peer) and the server's CPU time, so "handshakes/s per core" = 1e6 / server CPU µs per
 * handshake, independent of how fast the client side happens to be.
 *
 * Scenarios, same run:
 *   plain      server-auth TLS 1.3, no client certificate (baseline)
 *   openssl    mTLS, OpenSSL verifies the chain natively (reference)
 *   nocache    mTLS through DownstreamTlsProvider, verification cache off
 *   cached     mTLS through DownstreamTlsProvider, repeat peer (cache hits)
 *   resumed    mTLS through DownstreamTlsProvider, TLS 1.3 session resumption (tickets)
 */
import { fork } from 'node:child_process';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Diagnostics } from '../config/src/validation.js';
import { decodeDownstreamTlsContext, DownstreamTlsProvider, issueWorkload, mintRoot, SecretStore } from '../certs/src/index.js';

type Mode = 'plain' | 'openssl' | 'nocache' | 'cached' | 'resumed';

interface ClientJob {
  readonly port: number;
  readonly mode: Mode;
  readonly ms: number;
  readonly concurrency: number;
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
}

interface ClientResult { readonly done: number; readonly errors: number; readonly reused: number }

// ------------------------------------------------------------------ client (child process)

async function runClient(job: ClientJob): Promise<ClientResult> {
  const ctx = tls.createSecureContext({
    ca: job.ca, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3',
    ...(job.cert ? { cert: job.cert, key: job.key } : {}),
  });
  let done = 0, errors = 0, reused = 0;
  const deadline = Date.now() + job.ms;
  const one = (session: Buffer | undefined) => new Promise<Buffer | undefined>((resolve) => {
    let next = session;
    const s = tls.connect({ host: '127.0.0.1', port: job.port, servername: 'localhost', secureContext: ctx, ...(session ? { session } : {}) });
    s.on('session', (b: Buffer) => { next = b; });
    s.once('data', () => {
      done++;
      if (s.isSessionReused()) reused++;
      // Tickets come right after the handshake; by the time data arrives they are in.
      s.destroy();
      resolve(next);
    });
    s.on('error', () => { errors++; s.destroy(); resolve(undefined); });
    s.setTimeout(5000, () => { errors++; s.destroy(); resolve(undefined); });
  });
  await Promise.all(Array.from({ length: job.concurrency }, async () => {
    let session: Buffer | undefined;
    while (Date.now() < deadline) {
      const got = await one(job.mode === 'resumed' ? session : undefined);
      session = got ?? session;
    }
  }));
  return { done, errors, reused };
}

if (process.argv[2] === '--client') {
  process.on('message', (job: ClientJob) => {
    void runClient(job).then((r) => { process.send!(r); });
  });
} else {
  await main();
}

// ------------------------------------------------------------------ server (this process)

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const seconds = Number(args[args.indexOf('--seconds') + 1] ?? 0) || 4;
  const concurrency = Number(args[args.indexOf('--concurrency') + 1] ?? 0) || 16;

  const root = await mintRoot({ trustDomain: 'example.org' });
  const server = await issueWorkload({ ca: root, spiffeId: 'spiffe://example.org/ns/default/sa/server', dns: ['localhost'] });
  const client = await issueWorkload({ ca: root, spiffeId: 'spiffe://example.org/ns/default/sa/web' });

  const child = fork(new URL(import.meta.url).pathname, ['--client'], { stdio: 'inherit' });
  const ask = (job: ClientJob) => new Promise<ClientResult>((resolve) => { child.once('message', (r) => resolve(r as ClientResult)); child.send(job); });

  const spec = (() => {
    const d = new Diagnostics();
    const s = decodeDownstreamTlsContext({
      require_client_certificate: true,
      common_tls_context: {
        tls_certificates: [{ certificate_chain: { inline_string: server.chainPem }, private_key: { inline_string: server.keyPem } }],
        validation_context: {
          trusted_ca: { inline_string: root.certPem },
          match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: 'spiffe://example.org/ns/' } }],
        },
      },
    }, d);
    if (!s) throw new Error(JSON.stringify(d.errors));
    return s;
  })();
  const store = new SecretStore({ pollIntervalMs: 0 });

  async function scenario(mode: Mode): Promise<{ mode: Mode; rate: number; cpuUs: number; errors: number; reused: number; hits: number }> {
    let srv: tls.Server;
    let provider: DownstreamTlsProvider | undefined;
    const reply = (sock: tls.TLSSocket) => { sock.on('error', () => {}); sock.end('x'); };
    if (mode === 'plain') {
      srv = tls.createServer({ key: server.keyPem, cert: server.chainPem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }, reply);
    } else if (mode === 'openssl') {
      srv = tls.createServer({ key: server.keyPem, cert: server.chainPem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ca: root.certPem, requestCert: true, rejectUnauthorized: true }, reply);
    } else {
      provider = new DownstreamTlsProvider(spec, store, { verifyCache: { enabled: mode !== 'nocache' }, log: () => {} });
      srv = tls.createServer(provider.serverOptions(), reply);
      provider.attach(srv);
    }
    srv.on('tlsClientError', () => {});
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', 1024, r));
    const port = (srv.address() as AddressInfo).port;
    const job = { port, mode, concurrency, ca: root.certPem, ...(mode === 'plain' ? {} : { cert: client.chainPem, key: client.keyPem }) };
    await ask({ ...job, ms: 700 }); // warm-up: JIT, session cache, verify cache
    const hits0 = provider?.stats['ssl.verify_cache_hit'] ?? 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await ask({ ...job, ms: seconds * 1000 });
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const hits = (provider?.stats['ssl.verify_cache_hit'] ?? 0) - hits0;
    await new Promise<void>((res) => srv.close(() => res()));
    provider?.close();
    return { mode, rate: r.done / elapsed, cpuUs: (cpu.user + cpu.system) / Math.max(1, r.done), errors: r.errors, reused: r.reused, hits };
  }

  const results = [];
  for (const m of ['plain', 'openssl', 'nocache', 'cached', 'resumed'] as const) results.push(await scenario(m));
  child.kill();
  store.close();

  const by = Object.fromEntries(results.map((r) => [r.mode, r])) as Record<Mode, (typeof results)[number]>;
  console.log(`TLS 1.3 handshakes, ECDSA P-256, server on one core (Node ${process.version}), ${seconds}s per scenario, concurrency ${concurrency}`);
  console.log('scenario   observed hs/s   server CPU µs/hs   capacity hs/s/core   errors   resumed   cache hits');
  for (const r of results) {
    console.log(`${r.mode.padEnd(10)} ${r.rate.toFixed(0).padStart(13)}   ${r.cpuUs.toFixed(0).padStart(16)}   ${(1e6 / r.cpuUs).toFixed(0).padStart(18)}   ${String(r.errors).padStart(6)}   ${String(r.reused).padStart(7)}   ${String(r.hits).padStart(10)}`);
  }
  const ratio = (a: Mode, b: Mode) => (by[a].cpuUs / by[b].cpuUs).toFixed(2);
  console.log('');
  console.log(`repeat peer (cached mTLS) / plain server-auth:   ${ratio('cached', 'plain')}x CPU per handshake   (target <= 1.2x)`);
  console.log(`uncached mTLS / plain server-auth:               ${ratio('nocache', 'plain')}x`);
  console.log(`OpenSSL-native mTLS / plain server-auth:         ${ratio('openssl', 'plain')}x`);
  console.log(`cache speed-up (uncached / cached):              ${ratio('nocache', 'cached')}x`);
  console.log(`resumption speed-up (full cached / resumed):     ${ratio('cached', 'resumed')}x CPU, ${(by.resumed.rate / by.cached.rate).toFixed(2)}x observed rate   (target >= 3x)`);
}
