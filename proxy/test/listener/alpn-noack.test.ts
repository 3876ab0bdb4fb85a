/**
 * Envoy's TLS server answers a ClientHello whose ALPN has nothing in common with its own
 * by completing the handshake without ALPN (NOACK); Node's sends a fatal alert. Istio's
 * sidecars rely on Envoy's way (a client offering `istio-peer-exchange, istio` to an inbound
 * HTTP chain listing `h2, http/1.1`). Real sockets, real TLS.
 */
import t from 'tap';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { issueWorkload, mintRoot } from '../../../certs/src/index.js';
import { AlpnNoackTls } from '../../src/listener/alpn-noack.js';
import { setConnectionInfo } from '../../src/net/connection-info.js';

t.test('no ALPN in common: the handshake completes without ALPN, as Envoy does; in common: negotiated', async (t) => {
  const root = await mintRoot({ trustDomain: 'cluster.local' });
  const id = await issueWorkload({ ca: root, spiffeId: 'spiffe://cluster.local/ns/default/sa/reviews' });
  const options: tls.TlsOptions = { cert: id.chainPem, key: id.keyPem, ALPNProtocols: ['h2', 'http/1.1'] };
  const served: (string | false | null)[] = [];
  const onSecure = (s: tls.TLSSocket): void => {
    served.push(s.alpnProtocol);
    s.end('served');
  };
  const prepare = (server: tls.Server): void => void server.on('tlsClientError', (_e, s) => s.destroy());
  const main = tls.createServer(options, onSecure);
  prepare(main);
  const noack = new AlpnNoackTls(main, options, onSecure, prepare);
  // What the listener does: tls_inspector's ALPN on the connection, then the chain's TLS server.
  let offered: string[] = [];
  const listener = net.createServer((socket) => {
    setConnectionInfo(socket, { remoteAddress: '', remotePort: 0, localAddress: '', localPort: 0, transportProtocol: 'tls', applicationProtocols: offered, filterChainName: '' });
    noack.emitConnection(socket);
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  t.teardown(() => listener.close());
  const port = (listener.address() as AddressInfo).port;
  const connect = (alpn: string[]): Promise<{ alpn: string | false | null; body: string } | { error: string }> => new Promise((resolve) => {
    offered = alpn;
    const c = tls.connect({ port, host: '127.0.0.1', ca: [root.certPem], checkServerIdentity: () => undefined, ALPNProtocols: alpn });
    let body = '';
    c.on('data', (d) => (body += d));
    c.on('end', () => resolve({ alpn: c.alpnProtocol ?? null, body }));
    c.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
  });
  t.same(await connect(['istio-peer-exchange', 'istio']), { alpn: false, body: 'served' }, 'Istio ALPN against h2/http1.1: served without ALPN');
  t.same(await connect(['http/1.1']), { alpn: 'http/1.1', body: 'served' }, 'a common protocol is negotiated');
  t.same(await connect(['istio', 'h2']), { alpn: 'h2', body: 'served' });
  t.same(served, [false, 'http/1.1', 'h2']);
  // Without the twin, Node refuses: what this class exists for.
  offered = [];
  const plain = tls.createServer(options, onSecure);
  prepare(plain);
  const direct = net.createServer((s) => plain.emit('connection', s));
  await new Promise<void>((r) => direct.listen(0, '127.0.0.1', r));
  t.teardown(() => direct.close());
  const refused = await new Promise<string>((resolve) => {
    const c = tls.connect({ port: (direct.address() as AddressInfo).port, host: '127.0.0.1', ca: [root.certPem], checkServerIdentity: () => undefined, ALPNProtocols: ['istio'] });
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    c.on('secureConnect', () => resolve('connected'));
  });
  t.equal(refused, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL', 'a plain Node TLS server sends the fatal alert');
});
