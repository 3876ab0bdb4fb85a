/**
 * transport_socket_matches with real TLS: one cluster, an endpoint labelled
 * tlsMode=istio behind an mTLS server that requires a client certificate from the dev
 * CA, and an unlabelled plaintext endpoint. Each gets the transport its label selects;
 * the wrong one fails, so the choice is what makes both work.
 */
import t from 'tap';
import fc from 'fast-check';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import type { Endpoint, TransportSocketMatch, TypedExtension } from '../../../config/src/index.js';
import { issueWorkload, mintRoot, SecretStore, UPSTREAM_TLS_CONTEXT_TYPE, type CaHandle, type MintedCert } from '../../../certs/src/index.js';
import { ClusterRuntime } from '../../src/cluster/cluster.js';
import { StatsStore } from '../../src/stats/stats.js';
import { upstreamTlsBuilder } from '../../src/upstream/tls-builder.js';
import { labelsMatch, valueEqual } from '../../src/upstream/transport-match.js';
import { clusterOf, endpoint, nameServer } from './helpers.js';

let root: CaHandle;
let serverCert: MintedCert;
let clientCert: MintedCert;
t.before(async () => {
  root = await mintRoot({ trustDomain: 'cluster.local' });
  serverCert = await issueWorkload({ ca: root, spiffeId: 'spiffe://cluster.local/ns/default/sa/reviews' });
  clientCert = await issueWorkload({ ca: root, spiffeId: 'spiffe://cluster.local/ns/default/sa/productpage' });
});

/** An HTTPS server that refuses clients without a certificate from `root`; answers with the client's URI SAN. */
async function mtlsServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = https.createServer({ cert: serverCert.chainPem, key: serverCert.keyPem, ca: [root.certPem], requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    res.end(`mtls ${peer.subjectaltname ?? ''}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

const inline = (s: string) => ({ inline_string: s });
function istioMtls(): TypedExtension {
  return {
    name: 'envoy.transport_sockets.tls',
    typeUrl: UPSTREAM_TLS_CONTEXT_TYPE,
    config: {
      common_tls_context: {
        tls_certificates: [{ certificate_chain: inline(clientCert.chainPem), private_key: inline(clientCert.keyPem) }],
        validation_context: {
          trusted_ca: inline(root.certPem),
          match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: 'spiffe://cluster.local/' } }],
        },
      },
    },
  };
}

/** Istio's pair of matches: mTLS for tlsMode=istio, plaintext for everything else. */
function istioMatches(): TransportSocketMatch[] {
  return [
    { name: 'tlsMode-istio', match: { tlsMode: 'istio' }, transportSocket: istioMtls() },
    { name: 'tlsMode-disabled', match: {} },
  ];
}

async function get(d: Dispatcher): Promise<{ ok: true; body: string } | { ok: false; error: string }> {
  try {
    const r = await d.request({ path: '/', method: 'GET', headers: { host: 'reviews' } });
    return { ok: true, body: await r.body.text() };
  } catch (e) {
    return { ok: false, error: `${(e as { code?: string }).code ?? ''} ${(e as Error).message}` };
  }
}

async function setup(t: { teardown(fn: () => unknown): void }, matches: TransportSocketMatch[], label: (port: number, mtlsPort: number) => Endpoint['transportSocketMatch']) {
  const tlsUp = await mtlsServer();
  const plain = await nameServer('plain', { host: '127.0.0.1' });
  const secrets = new SecretStore({ pollIntervalMs: 0 });
  const eps = [tlsUp.port, plain.port].map((p) => {
    const l = label(p, tlsUp.port);
    return endpoint('127.0.0.1', p, l ? { transportSocketMatch: l } : {});
  });
  const c = new ClusterRuntime(clusterOf({ name: 'reviews', transportSocketMatches: matches }), eps, new StatsStore(), undefined,
    { upstreamTls: upstreamTlsBuilder(secrets, { log: () => {} }) });
  t.teardown(async () => { await c.destroy(); await c.close(); secrets.close(); await tlsUp.close(); await plain.close(); });
  const host = (port: number) => c.endpoints.get(`127.0.0.1:${port}`)!;
  return { c, tlsPort: tlsUp.port, plainPort: plain.port, host, eps };
}

t.test('tlsMode=istio endpoint gets mTLS, the unlabelled one plaintext; both answer', async (t) => {
  const { c, tlsPort, plainPort, host } = await setup(t, istioMatches(), (p, mtlsPort) => (p === mtlsPort ? { tlsMode: 'istio' } : undefined));
  t.equal(c.transportFor(host(tlsPort)).name, 'tlsMode-istio');
  t.equal(c.transportFor(host(plainPort)).name, 'tlsMode-disabled');
  const viaTls = await get(c.dispatcherFor(host(tlsPort)));
  t.same(viaTls, { ok: true, body: 'mtls URI:spiffe://cluster.local/ns/default/sa/productpage' }, 'mTLS with our client certificate');
  t.same(await get(c.dispatcherFor(host(plainPort))), { ok: true, body: 'plain' });
  t.equal(c.dispatcherFor(host(tlsPort)), c.dispatcherFor(host(tlsPort)), 'decided once: the same pool on every request');
});

t.test('the choice matters: the wrong transport fails both ways', async (t) => {
  // Labels swapped: plaintext towards the mTLS server, mTLS towards the plaintext server.
  const { c, tlsPort, plainPort, host } = await setup(t, istioMatches(), (p, mtlsPort) => (p === mtlsPort ? undefined : { tlsMode: 'istio' }));
  const r1 = await get(c.dispatcherFor(host(tlsPort)));
  t.notOk(r1.ok, `plaintext to the mTLS upstream fails (${r1.ok ? '' : r1.error})`);
  const r2 = await get(c.dispatcherFor(host(plainPort)));
  t.notOk(r2.ok, `TLS to the plaintext upstream fails (${r2.ok ? '' : r2.error})`);
});

t.test('no match -> the cluster transport_socket; a relabelled endpoint gets a new pool', async (t) => {
  // Only the istio match: the unlabelled endpoint falls back to the cluster default (none = plaintext).
  const { c, tlsPort, plainPort, host, eps } = await setup(t, istioMatches().slice(0, 1), (p, mtlsPort) => (p === mtlsPort ? { tlsMode: 'istio' } : undefined));
  t.equal(c.transportFor(host(plainPort)).name, 'default');
  t.same(await get(c.dispatcherFor(host(plainPort))), { ok: true, body: 'plain' });
  const h = host(tlsPort);
  const before = c.dispatcherFor(h);
  t.ok((await get(before)).ok);
  // EDS drops the label (the workload left the mesh): the host switches to plaintext, and fails.
  const tlsEp = eps.find((e) => e.port === tlsPort)!;
  c.applyDiff({ cluster: 'reviews', added: [], removed: [], changed: [{ ...tlsEp, transportSocketMatch: { tlsMode: 'disabled' } }] });
  t.equal(host(tlsPort), h, 'same host object');
  const after = c.dispatcherFor(h);
  t.not(after, before, 'a new pool for the new transport');
  t.notOk((await get(after)).ok, 'now plaintext towards the mTLS upstream');
  c.applyDiff({ cluster: 'reviews', added: [], removed: [], changed: [tlsEp] });
  t.ok((await get(c.dispatcherFor(h))).ok, 'label back: mTLS again');
});

t.test('ORIGINAL_DST hosts have no metadata: an empty match (or the default) applies', async (t) => {
  const tlsUp = await mtlsServer();
  const secrets = new SecretStore({ pollIntervalMs: 0 });
  const c = new ClusterRuntime(clusterOf({
    name: 'passthrough', type: 'ORIGINAL_DST', lbPolicy: 'CLUSTER_PROVIDED', cleanupInterval: 5000,
    transportSocketMatches: [{ name: 'never', match: { tlsMode: 'istio' } }, { name: 'all', match: {}, transportSocket: istioMtls() }],
  }), [], new StatsStore(), undefined, { upstreamTls: upstreamTlsBuilder(secrets, { log: () => {} }) });
  t.teardown(async () => { await c.destroy(); await c.close(); secrets.close(); await tlsUp.close(); });
  const h = c.pick({
    hash: NaN, exclude: undefined, headers: undefined,
    connection: { remoteAddress: '127.0.0.1', remotePort: 1, localAddress: '127.0.0.1', localPort: 15001, originalDst: { address: '127.0.0.1', port: tlsUp.port }, transportProtocol: 'raw_buffer', applicationProtocols: [], filterChainName: '' },
  })!;
  t.equal(c.transportFor(h).name, 'all');
  t.same(await get(c.dispatcherFor(h)), { ok: true, body: 'mtls URI:spiffe://cluster.local/ns/default/sa/productpage' });
});

t.test('a match with TLS but no builder is a configuration error naming the field', async (t) => {
  t.throws(() => new ClusterRuntime(clusterOf({ name: 'x', transportSocketMatches: istioMatches() }), [], new StatsStore()),
    /cluster x\.transport_socket_matches\[0\]\.transport_socket/);
});

t.test('labelsMatch: Envoy metadataLabelMatch semantics', async (t) => {
  t.ok(labelsMatch({}, undefined), 'empty match matches an endpoint without metadata');
  t.notOk(labelsMatch({ tlsMode: 'istio' }, undefined));
  t.ok(labelsMatch({ tlsMode: 'istio' }, { tlsMode: 'istio', other: 1 }), 'a subset is enough');
  t.notOk(labelsMatch({ tlsMode: 'istio' }, { tlsMode: 'disabled' }));
  t.notOk(labelsMatch({ a: 1, b: 2 }, { a: 1 }));
  t.ok(labelsMatch({ n: { x: [1, 'a'] } }, { n: { x: [1, 'a'] } }), 'structured values compare deeply');
  t.notOk(labelsMatch({ n: [1] }, { n: 1 }));
  fc.assert(fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.dictionary(fc.string(), fc.jsonValue()), (m, extra) => {
    // A match is matched by any metadata that contains it; and valueEqual is reflexive on clones.
    const meta = { ...extra, ...m };
    return labelsMatch(m, meta) && valueEqual(m, JSON.parse(JSON.stringify(m)));
  }));
  fc.assert(fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => valueEqual(a, b) === valueEqual(b, a)));
});

t.test('cluster transport_socket (mTLS) is the default; a match can turn one endpoint plaintext', async (t) => {
  const tlsUp = await mtlsServer();
  const plain = await nameServer('plain', { host: '127.0.0.1' });
  const secrets = new SecretStore({ pollIntervalMs: 0 });
  const build = upstreamTlsBuilder(secrets, { log: () => {} });
  const defaultTls = build(istioMtls(), 'cluster mixed.transport_socket');
  const eps = [endpoint('127.0.0.1', tlsUp.port), endpoint('127.0.0.1', plain.port, { transportSocketMatch: { tlsMode: 'disabled' } })];
  const c = new ClusterRuntime(clusterOf({ name: 'mixed', transportSocket: istioMtls(), transportSocketMatches: [{ name: 'plaintext', match: { tlsMode: 'disabled' } }] }),
    eps, new StatsStore(), defaultTls, { upstreamTls: build });
  t.teardown(async () => { await c.destroy(); await c.close(); defaultTls.close(); secrets.close(); await tlsUp.close(); await plain.close(); });
  t.same(await get(c.dispatcherFor(c.endpoints.get(eps[0]!.key)!)), { ok: true, body: 'mtls URI:spiffe://cluster.local/ns/default/sa/productpage' });
  t.same(await get(c.dispatcherFor(c.endpoints.get(eps[1]!.key)!)), { ok: true, body: 'plain' });
  t.equal(c.transportFor(c.endpoints.get(eps[0]!.key)!).name, 'default');
});
