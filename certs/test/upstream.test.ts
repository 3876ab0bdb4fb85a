import t from 'tap';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { Diagnostics } from '../../config/src/validation.js';
import { decodeSecret, decodeUpstreamTlsContext, issueWorkload, mintRoot, SecretStore, UpstreamTlsProvider } from '../src/index.js';
import { decodeDownstream, inline, makePki, mtlsConfig, startServer, type Pki } from './helpers.js';

let pki: Pki;
t.before(async () => { pki = await makePki(); });

function upstreamSpec(cfg: Record<string, unknown>) {
  const d = new Diagnostics();
  const s = decodeUpstreamTlsContext(cfg, d);
  if (!s) throw new Error(JSON.stringify(d.errors));
  return s;
}

async function get(pool: Pool): Promise<{ ok: boolean; body?: string; error?: string }> {
  try {
    const r = await pool.request({ path: '/', method: 'GET' });
    return { ok: true, body: await r.body.text() };
  } catch (e) {
    return { ok: false, error: `${(e as { code?: string }).code ?? ''} ${(e as Error).message}` };
  }
}

t.test('undici Pool with connect options from the provider: mTLS 1.3 with SAN matching', async (t) => {
  const s = await startServer(decodeDownstream(mtlsConfig(pki)), { log: () => {} });
  t.teardown(() => s.close());
  const store = new SecretStore({ pollIntervalMs: 0 });
  t.teardown(() => store.close());
  const p = new UpstreamTlsProvider(upstreamSpec({
    sni: 'localhost',
    common_tls_context: {
      tls_certificates: [{ certificate_chain: inline(pki.client.chainPem), private_key: inline(pki.client.keyPem) }],
      validation_context: {
        trusted_ca: inline(pki.root.certPem),
        match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://example.org/ns/default/sa/server' } }],
      },
    },
  }), store, { log: () => {} });
  t.teardown(() => p.close());
  const snap = p.current()!;
  t.ok(snap);
  t.equal(snap.connect.minVersion, 'TLSv1.3');
  t.equal(snap.connect.servername, 'localhost');
  const pool = new Pool(`https://127.0.0.1:${s.port}`, { connect: { ...snap.connect } });
  t.teardown(() => pool.destroy());
  const r = await get(pool);
  t.ok(r.ok, r.error ?? "ok");
  t.equal(r.body, 'spiffe://example.org/ns/default/sa/web', 'the server saw our SPIFFE ID');
  t.equal(p.stats['ssl.handshake'], 1);
  t.equal(p.current(), snap, 'same snapshot while nothing changed');
});

t.test('upstream with the wrong SPIFFE ID is refused (SAN mismatch)', async (t) => {
  const s = await startServer(decodeDownstream(mtlsConfig(pki)), { log: () => {} });
  t.teardown(() => s.close());
  const store = new SecretStore({ pollIntervalMs: 0 });
  t.teardown(() => store.close());
  const p = new UpstreamTlsProvider(upstreamSpec({
    common_tls_context: {
      tls_certificates: [{ certificate_chain: inline(pki.client.chainPem), private_key: inline(pki.client.keyPem) }],
      validation_context: {
        trusted_ca: inline(pki.root.certPem),
        match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://example.org/ns/default/sa/db' } }],
      },
    },
  }), store, { log: () => {} });
  t.teardown(() => p.close());
  const pool = new Pool(`https://127.0.0.1:${s.port}`, { connect: { ...p.current()!.connect } });
  t.teardown(() => pool.destroy());
  const r = await get(pool);
  t.notOk(r.ok);
  t.match(r.error, /SAN mismatch|ALTNAME/);
  t.equal(p.stats['ssl.fail_verify_san'], 1);
});

t.test('upstream chained to an unknown CA is refused by OpenSSL', async (t) => {
  const other = await mintRoot({ trustDomain: 'example.org' });
  const srv = await issueWorkload({ ca: other, spiffeId: 'spiffe://example.org/x', dns: ['localhost'] });
  const server = tls.createServer({ key: srv.keyPem, cert: srv.chainPem, minVersion: 'TLSv1.3' }, (c) => c.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const store = new SecretStore({ pollIntervalMs: 0 });
  t.teardown(() => store.close());
  const p = new UpstreamTlsProvider(upstreamSpec({ common_tls_context: { validation_context: { trusted_ca: inline(pki.root.certPem) } } }), store, { log: () => {} });
  t.teardown(() => p.close());
  const pool = new Pool(`https://127.0.0.1:${(server.address() as AddressInfo).port}`, { connect: { ...p.current()!.connect } });
  t.teardown(() => pool.destroy());
  const r = await get(pool);
  t.notOk(r.ok);
  t.match(r.error, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/i);
});

t.test('SDS rotation bumps the version; pools rebuilt from current() use the new client cert', async (t) => {
  const s = await startServer(decodeDownstream(mtlsConfig(pki)), { log: () => {} });
  t.teardown(() => s.close());
  const store = new SecretStore({ pollIntervalMs: 0 });
  t.teardown(() => store.close());
  const push = (c: { chainPem: string; keyPem: string }) => store.set('client', decodeSecret({
    name: 'client', tls_certificate: { certificate_chain: inline(c.chainPem), private_key: inline(c.keyPem) },
  }, new Diagnostics())!);
  const p = new UpstreamTlsProvider(upstreamSpec({
    common_tls_context: {
      tls_certificate_sds_secret_configs: [{ name: 'client' }],
      validation_context: { trusted_ca: inline(pki.root.certPem) },
    },
  }), store, { log: () => {} });
  t.teardown(() => p.close());
  t.equal(p.current(), undefined, 'warming');
  push(pki.client);
  const v1 = p.current()!;
  const changes: number[] = [];
  p.on('change', (snap: { version: number }) => changes.push(snap.version));
  const next = await issueWorkload({ ca: pki.root, spiffeId: 'spiffe://example.org/ns/default/sa/web-v2' });
  push(next);
  const v2 = p.current()!;
  t.ok(v2.version > v1.version);
  t.same(changes, [v2.version]);
  const pool = new Pool(`https://127.0.0.1:${s.port}`, { connect: { ...v2.connect, servername: 'localhost' } });
  t.teardown(() => pool.destroy());
  t.equal((await get(pool)).body, 'spiffe://example.org/ns/default/sa/web-v2');
});
