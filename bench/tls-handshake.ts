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
 *   floor      mTLS handshake with no chain verification at all (the protocol's own cost:
 *              client CertificateVerify etc.) - what any verification is measured against
 *   openssl    mTLS, OpenSSL verifies the chain natively (reference)
 *   nocache    mTLS through DownstreamTlsProvider, verification cache off
 *   cached     mTLS through DownstreamTlsProvider, repeat peer (cache hits)
 *   resumed    mTLS through DownstreamTlsProvider, TLS 1.3 session resumption (tickets)
 */
import { fork } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Diagnostics } from '../config/src/validation.js';
import { createTlsStats, decodeDownstreamTlsContext, DownstreamTlsProvider, issueWorkload, mintRoot, PeerVerifier, SecretStore } from '../certs/src/index.js';
import { compileSanMatchers } from '../certs/src/match.js';

type Mode = 'plain' | 'floor' | 'openssl' | 'nocache' | 'cached' | 'resumed';

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
  // Each worker keeps the newest ticket it was given; tickets may arrive after the first data.
  const one = (slot: { session?: Buffer }) => new Promise<void>((resolve) => {
    const session = job.mode === 'resumed' ? slot.session : undefined;
    const s = tls.connect({ host: '127.0.0.1', port: job.port, servername: 'localhost', secureContext: ctx, ...(session ? { session } : {}) });
    s.on('session', (b: Buffer) => { slot.session = b; });
    s.once('data', () => {
      done++;
      if (s.isSessionReused()) reused++;
      // Wait for the server's close so a late ticket is still seen.
      s.end();
    });
    s.on('close', () => resolve());
    s.on('error', () => { errors++; s.destroy(); });
    s.setTimeout(5000, () => { errors++; s.destroy(); });
  });
  await Promise.all(Array.from({ length: job.concurrency }, async () => {
    const slot: { session?: Buffer } = {};
    while (Date.now() < deadline) await one(slot);
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
  const flag = (name: string, dflt: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) || dflt : dflt);
  const seconds = flag('--seconds', 3);
  const concurrency = flag('--concurrency', 16);
  const rounds = flag('--rounds', 3);

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

  /** [C] the verifier alone (no sockets): immune to the scheduling noise of a shared machine. */
  function verifierCost(): void {
    const anchor = new X509Certificate(root.certPem);
    const leaf = new X509Certificate(client.certPem);
    const policy = {
      anchors: [anchor], domains: new Map(), certificateHashes: new Set<string>(), allowExpired: false, acceptUntrusted: false, maxVerifyDepth: 8,
      sanMatchers: compileSanMatchers([{ sanType: 'URI', matcher: { kind: 'prefix', value: 'spiffe://example.org/ns/', ignoreCase: false } }]), key: 'bench',
    };
    const time = (enabled: boolean) => {
      const v = new PeerVerifier(createTlsStats(), { enabled });
      v.setPolicy(policy);
      for (let i = 0; i < 200; i++) v.verify(leaf, []);
      const n = enabled ? 20_000 : 1_000;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) if (!v.verify(leaf, []).ok) throw new Error('verify failed');
      return ((performance.now() - t0) * 1000) / n;
    };
    console.log(`\n[C] peer verification alone, per call: uncached ${time(false).toFixed(1)} µs (chain signature + validity + SAN), cached ${time(true).toFixed(2)} µs (fingerprint + LRU lookup)`);
  }

  async function scenario(mode: Mode, inproc: boolean): Promise<{ mode: Mode; rate: number; cpuUs: number; errors: number; reused: number; hits: number }> {
    let srv: tls.Server;
    let provider: DownstreamTlsProvider | undefined;
    const reply = (sock: tls.TLSSocket) => { sock.on('error', () => {}); sock.end('x'); };
    if (mode === 'plain') {
      srv = tls.createServer({ key: server.keyPem, cert: server.chainPem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }, reply);
    } else if (mode === 'floor') {
      srv = tls.createServer({ key: server.keyPem, cert: server.chainPem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ca: [], requestCert: true, rejectUnauthorized: false }, reply);
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
    const drive = (j: ClientJob) => (inproc ? runClient(j) : ask(j));
    await drive({ ...job, ms: 700 }); // warm-up: JIT, session cache, verify cache
    const hits0 = provider?.stats['ssl.verify_cache_hit'] ?? 0;
    // Background CPU of this process with no traffic (GC, timers), subtracted below so that
    // scenarios the client drives slowly are not charged for it.
    let idleUsPerMs = 0;
    if (!inproc) {
      const i0 = process.cpuUsage();
      const w0 = performance.now();
      await new Promise((r) => setTimeout(r, 500));
      const i = process.cpuUsage(i0);
      idleUsPerMs = (i.user + i.system) / (performance.now() - w0);
    }
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await drive({ ...job, ms: seconds * 1000, concurrency: inproc ? 4 : concurrency });
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const hits = (provider?.stats['ssl.verify_cache_hit'] ?? 0) - hits0;
    await new Promise<void>((res) => srv.close(() => res()));
    provider?.close();
    const busy = Math.max(0, cpu.user + cpu.system - idleUsPerMs * elapsed * 1000);
    return { mode, rate: r.done / elapsed, cpuUs: busy / Math.max(1, r.done), errors: r.errors, reused: r.reused, hits };
  }

  // Scenarios interleaved over rounds, median per scenario: the machine may be shared.
  const modes = ['plain', 'floor', 'openssl', 'nocache', 'cached', 'resumed'] as const;
  const median = (xs: number[]) => { const a = [...xs].sort((x, y) => x - y); return a[Math.floor(a.length / 2)]!; };
  async function table(inproc: boolean) {
    const samples = new Map<Mode, Awaited<ReturnType<typeof scenario>>[]>();
    for (let round = 0; round < rounds; round++) {
      // Rotate the order each round so no scenario always runs right after the same one.
      const order = modes.map((_, i) => modes[(i + round) % modes.length]!);
      for (const m of order) samples.set(m, [...(samples.get(m) ?? []), await scenario(m, inproc)]);
    }
    const results = modes.map((m) => {
      const xs = samples.get(m)!;
      return {
        mode: m,
        rate: median(xs.map((x) => x.rate)),
        cpuUs: median(xs.map((x) => x.cpuUs)),
        errors: xs.reduce((a, x) => a + x.errors, 0),
        reused: xs.reduce((a, x) => a + x.reused, 0),
        hits: xs.reduce((a, x) => a + x.hits, 0),
      };
    });
    const by = Object.fromEntries(results.map((r) => [r.mode, r])) as Record<Mode, (typeof results)[number]>;
    console.log('');
    console.log(inproc
      ? `[A] client and server in ONE process on one core: CPU per handshake counts both ends (${rounds} rounds x ${seconds}s, medians)`
      : `[B] server alone on one core, client forked onto the other core: server CPU per handshake (${rounds} rounds x ${seconds}s, medians, client concurrency ${concurrency})`);
    console.log('scenario   observed hs/s   CPU µs/hs   capacity hs/s/core   errors   resumed   cache hits');
    for (const r of results) {
      console.log(`${r.mode.padEnd(10)} ${r.rate.toFixed(0).padStart(13)}   ${r.cpuUs.toFixed(0).padStart(9)}   ${(1e6 / r.cpuUs).toFixed(0).padStart(18)}   ${String(r.errors).padStart(6)}   ${String(r.reused).padStart(7)}   ${String(r.hits).padStart(10)}`);
    }
    const ratio = (a: Mode, b: Mode) => (by[a].cpuUs / by[b].cpuUs).toFixed(2);
    console.log('ratios of CPU per handshake:');
    console.log(`  repeat peer, full handshake (cached) / plain:   ${ratio('cached', 'plain')}x   (target <= 1.2x)`);
    console.log(`  repeat peer, resumed / plain:                   ${ratio('resumed', 'plain')}x`);
    console.log(`  mTLS protocol floor (no verification) / plain:  ${ratio('floor', 'plain')}x`);
    console.log(`  cached / floor (cost of cached verification):   ${ratio('cached', 'floor')}x`);
    console.log(`  uncached / floor:                               ${ratio('nocache', 'floor')}x`);
    console.log(`  OpenSSL-native mTLS / floor:                    ${ratio('openssl', 'floor')}x`);
    console.log(`  cache speed-up (uncached / cached):             ${ratio('nocache', 'cached')}x`);
    console.log(`  resumption speed-up (full uncached / resumed):  ${ratio('nocache', 'resumed')}x   (target >= 3x)`);
    console.log(`  resumption speed-up (full cached / resumed):    ${ratio('cached', 'resumed')}x`);
    if (!inproc) console.log(`  observed rate, resumed / full cached:           ${(by.resumed.rate / by.cached.rate).toFixed(2)}x`);
  }
  console.log(`TLS 1.3 handshakes, ECDSA P-256 certificates, X25519, Node ${process.version}`);
  verifierCost();
  await table(true);
  await table(false);
  child.kill();
  store.close();
}
