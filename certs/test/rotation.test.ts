import t from 'tap';
import https from 'node:https';
import tls from 'node:tls';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Diagnostics } from '../../config/src/validation.js';
import { decodeSecret, issueWorkload, mintRoot, SecretStore } from '../src/index.js';
import { decodeDownstream, inline, makePki, request, startServer, tmpDir, waitFor, type ClientOpts } from './helpers.js';

/** Bounded load: `workers` loops of fresh-connection requests until stopped or `max` requests. */
function load(port: number, client: () => ClientOpts, workers = 4, max = 3000) {
  let stop = false;
  let sent = 0;
  const failures: string[] = [];
  const serials = new Set<string>();
  const loops = Array.from({ length: workers }, async () => {
    while (!stop && sent < max) {
      sent++;
      const r = await request(port, client(), 15_000);
      if (!r.ok) failures.push(r.error ?? 'unknown');
    }
  });
  return {
    get sent() { return sent; },
    failures,
    serials,
    async stop() { stop = true; await Promise.all(loops); },
  };
}

async function atomicWrite(path: string, data: string): Promise<void> {
  await writeFile(`${path}.tmp`, data);
  await rename(`${path}.tmp`, path);
}

function serverSerial(port: number, ca: string, client: ClientOpts): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, cert: client.cert, key: client.key }, () => {
      const serial = c.getPeerX509Certificate()!.serialNumber;
      c.destroy();
      resolve(serial);
    });
    c.on('error', reject);
  });
}

t.test('server certificate rotation by file under load: zero failed requests, new handshakes get the new cert', async (t) => {
  const pki = await makePki();
  const dir = await tmpDir(t);
  await writeFile(join(dir, 'tls.crt'), pki.server.chainPem);
  await writeFile(join(dir, 'tls.key'), pki.server.keyPem);
  const store = new SecretStore({ pollIntervalMs: 200, debounceMs: 20 });
  t.teardown(() => store.close());
  const s = await startServer(decodeDownstream({
    require_client_certificate: true,
    common_tls_context: {
      tls_certificates: [{ certificate_chain: { filename: join(dir, 'tls.crt') }, private_key: { filename: join(dir, 'tls.key') } }],
      validation_context: { trusted_ca: inline(pki.root.certPem) },
    },
  }), { log: () => {}, store });
  t.teardown(() => s.close());
  const client = { ca: pki.root.certPem, cert: pki.client.chainPem, key: pki.client.keyPem };
  const before = await serverSerial(s.port, pki.root.certPem, client);

  // An established keep-alive connection must carry on across the rotation.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const keepAliveGet = () => new Promise<{ body: string; port: number }>((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port: s.port, servername: 'localhost', agent, ...client }, (res) => {
      let body = '';
      const port = res.socket.localPort!;
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ body, port }));
    });
    req.on('error', reject);
  });
  s.server.keepAliveTimeout = 30_000;
  const k1 = await keepAliveGet();

  const l = load(s.port, () => client);
  await waitFor(() => l.sent > 40);
  const next = await issueWorkload({ ca: pki.root, spiffeId: 'spiffe://example.org/ns/default/sa/server', dns: ['localhost'] });
  // Cert first, then key: in between the pair does not match and must not be installed.
  await atomicWrite(join(dir, 'tls.crt'), next.chainPem);
  await new Promise((r) => setTimeout(r, 60));
  await atomicWrite(join(dir, 'tls.key'), next.keyPem);
  t.ok(await waitFor(() => s.provider.stats['ssl.rotation'] >= 1, 15_000), 'rotation observed');
  const atRotation = l.sent;
  await waitFor(() => l.sent > atRotation + 40);
  await l.stop();
  t.equal(l.failures.length, 0, `no failed requests out of ${l.sent}: ${l.failures.slice(0, 3).join(', ')}`);
  const after = await serverSerial(s.port, pki.root.certPem, client);
  t.not(after, before, 'new handshakes see the new certificate');
  t.equal(after, new (await import('node:crypto')).X509Certificate(next.certPem).serialNumber);
  const k2 = await keepAliveGet();
  t.equal(k2.port, k1.port, 'the established connection was reused after rotation');
  t.equal(k2.body, 'spiffe://example.org/ns/default/sa/web');
  t.ok(s.provider.stats['ssl.rotation_error'] <= 1, 'the mismatched intermediate state was refused, not served');
});

t.test('server certificate rotation over SDS', async (t) => {
  const pki = await makePki();
  const store = new SecretStore({ pollIntervalMs: 0 });
  t.teardown(() => store.close());
  const push = (c: { chainPem: string; keyPem: string }) => store.set('server-cert', decodeSecret({
    name: 'server-cert', tls_certificate: { certificate_chain: inline(c.chainPem), private_key: inline(c.keyPem) },
  }, new Diagnostics())!);
  const spec = decodeDownstream({
    require_client_certificate: true,
    common_tls_context: {
      tls_certificate_sds_secret_configs: [{ name: 'server-cert', sds_config: { ads: {} } }],
      validation_context: { trusted_ca: inline(pki.root.certPem) },
    },
  });
  const { DownstreamTlsProvider } = await import('../src/index.js');
  const p = new DownstreamTlsProvider(spec, store, { log: () => {} });
  t.teardown(() => p.close());
  t.equal(p.ready(), false, 'warming until the secret arrives');
  t.same(store.watchedNames(), ['server-cert']);
  const ready = p.whenReady(2000);
  push(pki.server);
  t.equal(await ready, true);
  const s = await startServer(spec, { log: () => {}, store });
  t.teardown(() => s.close());
  const client = { ca: pki.root.certPem, cert: pki.client.chainPem, key: pki.client.keyPem };
  const l = load(s.port, () => client, 3, 1000);
  await waitFor(() => l.sent > 30);
  const next = await issueWorkload({ ca: pki.root, spiffeId: 'spiffe://example.org/ns/default/sa/server', dns: ['localhost'] });
  const v = s.provider.version;
  push(next);
  t.equal(s.provider.version, v + 1);
  const at = l.sent;
  await waitFor(() => l.sent > at + 30);
  await l.stop();
  t.equal(l.failures.length, 0, `no failures out of ${l.sent}`);
  const { X509Certificate } = await import('node:crypto');
  t.equal(await serverSerial(s.port, pki.root.certPem, client), new X509Certificate(next.certPem).serialNumber);
});

t.test('trust bundle rotation: add the new root, move clients, remove the old root - no break', async (t) => {
  const oldPki = await makePki();
  const newRoot = await mintRoot({ trustDomain: 'example.org' });
  const newClient = await issueWorkload({ ca: newRoot, spiffeId: 'spiffe://example.org/ns/default/sa/web' });
  const dir = await tmpDir(t);
  const bundle = join(dir, 'ca.crt');
  await writeFile(bundle, oldPki.root.certPem);
  const store = new SecretStore({ pollIntervalMs: 200, debounceMs: 20 });
  t.teardown(() => store.close());
  const s = await startServer(decodeDownstream({
    require_client_certificate: true,
    common_tls_context: {
      tls_certificates: [{ certificate_chain: inline(oldPki.server.chainPem), private_key: inline(oldPki.server.keyPem) }],
      validation_context: { trusted_ca: { filename: bundle } },
    },
  }), { log: () => {}, store });
  t.teardown(() => s.close());
  const oldC = { ca: oldPki.root.certPem, cert: oldPki.client.chainPem, key: oldPki.client.keyPem };
  const newC = { ca: oldPki.root.certPem, cert: newClient.chainPem, key: newClient.keyPem };
  let useNew = false;
  const l = load(s.port, () => (useNew ? newC : oldC), 4, 3000);
  await waitFor(() => l.sent > 30);
  // Step 1: both roots.
  await atomicWrite(bundle, oldPki.root.certPem + newRoot.certPem);
  t.ok(await waitFor(() => s.provider.stats['ssl.rotation'] >= 1, 15_000), 'bundle with both roots loaded');
  let at = l.sent;
  await waitFor(() => l.sent > at + 30);
  // Step 2: clients move to certificates from the new root.
  useNew = true;
  at = l.sent;
  await waitFor(() => l.sent > at + 30);
  // Step 3: the old root goes.
  await atomicWrite(bundle, newRoot.certPem);
  t.ok(await waitFor(() => s.provider.stats['ssl.rotation'] >= 2, 15_000), 'bundle with only the new root loaded');
  at = l.sent;
  await waitFor(() => l.sent > at + 30);
  await l.stop();
  t.equal(l.failures.length, 0, `no failed requests out of ${l.sent}: ${l.failures.slice(0, 3).join(', ')}`);
  t.ok(s.provider.stats['ssl.verify_cache_flush'] >= 2, 'each bundle change flushed the cache');
  t.notOk((await request(s.port, oldC)).ok, 'the old root is no longer trusted');
});

t.test('a broken rotation keeps the last good material', async (t) => {
  const pki = await makePki();
  const dir = await tmpDir(t);
  await writeFile(join(dir, 'tls.crt'), pki.server.chainPem);
  await writeFile(join(dir, 'tls.key'), pki.server.keyPem);
  const lines: string[] = [];
  const store = new SecretStore({ pollIntervalMs: 0, debounceMs: 10 });
  t.teardown(() => store.close());
  const s = await startServer(decodeDownstream({
    require_client_certificate: true,
    common_tls_context: {
      tls_certificates: [{ certificate_chain: { filename: join(dir, 'tls.crt') }, private_key: { filename: join(dir, 'tls.key') } }],
      validation_context: { trusted_ca: inline(pki.root.certPem) },
    },
  }), { log: (_l, m) => lines.push(m), store });
  t.teardown(() => s.close());
  await atomicWrite(join(dir, 'tls.crt'), '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n');
  store.recheckFiles();
  t.equal(s.provider.stats['ssl.rotation_error'], 1);
  t.ok(lines.some((l) => /keeping the previous one/.test(l)), lines.join(' | '));
  t.ok((await request(s.port, { ca: pki.root.certPem, cert: pki.client.chainPem, key: pki.client.keyPem })).ok);
});
