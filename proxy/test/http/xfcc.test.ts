import t from 'tap';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueWorkload, mintRoot } from '../../../certs/src/index.js';
import type { ForwardClientCertDetails, HttpConnectionManager } from '../../../config/src/index.js';
import { bootstrapYaml, get, startUpstream, staticCluster, type Upstream } from '../helpers.js';
import { startProxyPatched } from './helpers.js';

const ROUTES = `
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up } }]`;

// Independent of the code under test: Envoy's five-character PEM encoding.
const enc = (pem: string) => pem.split('\n').join('%0A').split(' ').join('%20').split('+').join('%2B').split('/').join('%2F').split('=').join('%3D');

t.test('x-forwarded-client-cert over real mTLS, every mode', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-xfcc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await mintRoot({ trustDomain: 'example.org' });
  const proxyCert = await issueWorkload({ ca, dns: ['proxy.test'], spiffeId: 'spiffe://example.org/ns/default/sa/proxy' });
  const client = await issueWorkload({ ca, dns: ['client.test', 'alt.client.test'], spiffeId: 'spiffe://example.org/ns/default/sa/client', commonName: 'client' });
  writeFileSync(join(dir, 'cert.pem'), proxyCert.chainPem);
  writeFileSync(join(dir, 'key.pem'), proxyCert.keyPem);
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  const up = await startUpstream(t, 'up');
  const tlsYaml = bootstrapYaml(ROUTES, staticCluster('up', [up.port])).replace('    filter_chains:\n    - filters:', `    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [{ certificate_chain: { filename: ${join(dir, 'cert.pem')} }, private_key: { filename: ${join(dir, 'key.pem')} } }]
            validation_context: { trusted_ca: { filename: ${join(dir, 'ca.pem')} } }
      filters:`);

  const leaf = new X509Certificate(client.certPem);
  const hash = createHash('sha256').update(leaf.raw).digest('hex');
  const by = 'By=spiffe://example.org/ns/default/sa/proxy';
  const base = `${by};Hash=${hash}`;
  const all = `${base};Cert="${enc(client.certPem)}";Chain="${enc(client.certPem)}";Subject="CN=client,O=pilotfish";URI=spiffe://example.org/ns/default/sa/client;DNS=client.test;DNS=alt.client.test`;
  const incoming = 'By=spiffe://evil;Hash=00';

  async function seen(mode: ForwardClientCertDetails, extra: Partial<HttpConnectionManager> = {}): Promise<string | undefined> {
    const p = await startProxyPatched(t, tlsYaml, { forwardClientCertDetails: mode, ...extra });
    await new Promise<void>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: p.port(), path: '/', ca: ca.certPem, cert: client.certPem, key: client.keyPem, servername: 'proxy.test', agent: false,
        headers: { host: 'proxy.test', 'x-forwarded-client-cert': incoming } }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', reject);
    });
    await p.stop(0);
    return up.requests.at(-1)?.headers['x-forwarded-client-cert'] as string | undefined;
  }

  t.equal(await seen('SANITIZE'), undefined, 'SANITIZE removes the incoming header');
  t.equal(await seen('FORWARD_ONLY'), incoming, 'FORWARD_ONLY passes it unchanged');
  t.equal(await seen('ALWAYS_FORWARD_ONLY'), incoming, 'ALWAYS_FORWARD_ONLY passes it unchanged');
  t.equal(await seen('APPEND_FORWARD'), `${incoming},${base}`, 'APPEND_FORWARD appends By and Hash');
  t.equal(await seen('SANITIZE_SET'), base, 'SANITIZE_SET replaces it');
  t.equal(await seen('SANITIZE_SET', { setCurrentClientCertDetails: { subject: true, cert: true, chain: true, dns: true, uri: true } }), all,
    'every detail, in Envoy order with Envoy quoting');

  // HTTP/2 over mTLS: the element is per connection, the same for each stream.
  const p = await startProxyPatched(t, tlsYaml, { forwardClientCertDetails: 'APPEND_FORWARD', setCurrentClientCertDetails: { subject: true, cert: false, chain: false, dns: false, uri: true } });
  const session = http2.connect(`https://127.0.0.1:${p.port()}`, { ca: ca.certPem, cert: client.certPem, key: client.keyPem, servername: 'proxy.test' });
  t.teardown(() => session.close());
  for (let i = 0; i < 2; i++) {
    await new Promise<void>((resolve, reject) => {
      const s = session.request({ ':path': '/', ':authority': 'proxy.test' });
      s.on('response', () => undefined);
      s.resume();
      s.on('end', resolve);
      s.on('error', reject);
    });
    t.equal(up.requests.at(-1)?.headers['x-forwarded-client-cert'], `${base};Subject="CN=client,O=pilotfish";URI=spiffe://example.org/ns/default/sa/client`, `h2 stream ${i + 1}`);
  }
});

t.test('plaintext: only ALWAYS_FORWARD_ONLY keeps an incoming header', async (t) => {
  const up: Upstream = await startUpstream(t, 'up');
  for (const [mode, keeps] of [['SANITIZE', false], ['FORWARD_ONLY', false], ['APPEND_FORWARD', false], ['SANITIZE_SET', false], ['ALWAYS_FORWARD_ONLY', true]] as const) {
    const p = await startProxyPatched(t, bootstrapYaml(ROUTES, staticCluster('up', [up.port])), { forwardClientCertDetails: mode });
    await get(p.port(), '/', { 'x-forwarded-client-cert': 'By=spiffe://forged;Hash=00' });
    t.equal(up.requests.at(-1)?.headers['x-forwarded-client-cert'], keeps ? 'By=spiffe://forged;Hash=00' : undefined, `${mode} on plaintext`);
    await p.stop(0);
  }
});
