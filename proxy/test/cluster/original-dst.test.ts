/**
 * ORIGINAL_DST clusters against real upstream servers on loopback addresses: the host
 * is the downstream connection's restored original destination, or the
 * x-envoy-original-dst-host header when use_http_header is set (Envoy's precedence),
 * hosts are created on demand and swept after cleanup_interval, and destinations that
 * are the proxy's own listeners are refused.
 */
import t from 'tap';
import fc from 'fast-check';
import * as net from 'node:net';
import type { Dispatcher } from 'undici';
import { ClusterRuntime } from '../../src/cluster/cluster.js';
import { parseHostPort } from '../../src/cluster/original-dst.js';
import type { ConnectionInfo } from '../../src/net/connection-info.js';
import { StatsStore } from '../../src/stats/stats.js';
import { clusterOf, nameServer } from '../upstream/helpers.js';

function conn(originalDst?: { address: string; port: number }): ConnectionInfo {
  return {
    remoteAddress: '127.0.0.9', remotePort: 40000, localAddress: '127.0.0.1', localPort: 15001,
    ...(originalDst ? { originalDst } : {}),
    transportProtocol: 'raw_buffer', applicationProtocols: [], filterChainName: '',
  };
}

type Ctx = { hash: number; exclude: undefined; connection: ConnectionInfo | undefined; headers: Record<string, string | string[] | undefined> | undefined };
const ctx = (connection?: ConnectionInfo, headers?: Record<string, string | string[] | undefined>): Ctx => ({ hash: NaN, exclude: undefined, connection, headers });

function runtime(over: Parameters<typeof clusterOf>[0] = {}, ownListeners?: () => { address: string; port: number }[]) {
  const store = new StatsStore();
  const c = new ClusterRuntime(clusterOf({ name: 'passthrough', type: 'ORIGINAL_DST', lbPolicy: 'CLUSTER_PROVIDED', cleanupInterval: 5000, ...over }), [], store, undefined,
    ownListeners ? { ownListeners } : {});
  const counter = (n: string) => store.clusterScope('passthrough').counter(n).value;
  return { c, counter };
}

async function get(d: Dispatcher, headers: Record<string, string> = { host: 'app.example' }): Promise<string> {
  const r = await d.request({ path: '/x', method: 'GET', headers });
  return r.body.text();
}

t.test('requests go to the connection\'s original destination; one host and pool per address:port', async (t) => {
  const a = await nameServer('a', { host: '127.0.0.1' });
  const b = await nameServer('b', { host: '127.0.0.2' });
  const { c } = runtime();
  t.teardown(async () => { await c.close(); await a.close(); await b.close(); });

  const toA = conn({ address: '127.0.0.1', port: a.port });
  const toB = conn({ address: '127.0.0.2', port: b.port });
  const ha = c.pick(ctx(toA))!;
  t.ok(ha, 'a host for a restored destination');
  t.equal(ha.endpoint.key, `127.0.0.1:${a.port}`);
  t.equal(await get(c.dispatcherFor(ha)), 'a');
  const hb = c.pick(ctx(toB))!;
  t.equal(await get(c.dispatcherFor(hb)), 'b');
  t.equal(c.pick(ctx(conn({ address: '127.0.0.1', port: a.port }))), ha, 'same address:port -> same host');
  t.equal(c.dispatcherFor(ha), c.dispatcherFor(ha), 'one pool per host');
  t.equal(c.originalDst!.size, 2);
  t.equal(c.stats.membership_total.value, 2);
  t.equal(c.stats.membership_healthy.value, 2);
  t.equal(c.pick(ctx(conn({ address: '::ffff:127.0.0.1', port: a.port }))), ha, 'a v4-mapped address is the same host');
  t.equal(c.originalDst!.size, 2);
  t.same(a.seen, ['GET /x host=app.example']);
  t.same(b.seen, ['GET /x host=app.example']);
});

t.test('no restored original destination: no host (503 UH), as in Envoy', async (t) => {
  const { c } = runtime();
  t.teardown(() => c.close());
  t.equal(c.pick(ctx(conn())), undefined, 'the listener\'s own address is not a destination');
  t.equal(c.pick(ctx(undefined)), undefined, 'no connection');
  t.equal(c.stats.upstream_cx_none_healthy.value, 2);
  t.equal(c.originalDst!.size, 0);
});

t.test('use_http_header: a valid header wins, an invalid one is counted and the connection is used', async (t) => {
  const a = await nameServer('a', { host: '127.0.0.1' });
  const b = await nameServer('b', { host: '127.0.0.2' });
  const { c, counter } = runtime({ originalDst: { useHttpHeader: true, httpHeaderName: 'x-envoy-original-dst-host' } });
  t.teardown(async () => { await c.close(); await a.close(); await b.close(); });
  const toA = conn({ address: '127.0.0.1', port: a.port });

  const h1 = c.pick(ctx(toA, { 'x-envoy-original-dst-host': `127.0.0.2:${b.port}` }))!;
  t.equal(await get(c.dispatcherFor(h1)), 'b', 'header wins over the connection');
  const h2 = c.pick(ctx(toA, { 'x-envoy-original-dst-host': [`127.0.0.2:${b.port}`, `127.0.0.1:${a.port}`] }))!;
  t.equal(h2, h1, 'only the first value of a repeated header counts');
  for (const bad of ['nonsense', '127.0.0.2', 'example.com:80', `127.0.0.2:${b.port}x`, '[::1:80', '1.2.3.4:70000']) {
    const h = c.pick(ctx(toA, { 'x-envoy-original-dst-host': bad }))!;
    t.equal(h.endpoint.key, `127.0.0.1:${a.port}`, `invalid "${bad}" -> the connection's destination`);
  }
  t.equal(counter('original_dst_host_invalid'), 6);
  t.equal(c.pick(ctx(undefined, { 'x-envoy-original-dst-host': 'nonsense' })), undefined, 'invalid header and no connection: no host');
  t.equal(await get(c.dispatcherFor(c.pick(ctx(toA, {}))!)), 'a', 'no header -> connection');
});

t.test('http_header_name and upstream_port_override', async (t) => {
  const a = await nameServer('a', { host: '127.0.0.1' });
  const { c } = runtime({ originalDst: { useHttpHeader: true, httpHeaderName: 'X-Target', upstreamPortOverride: a.port } });
  t.teardown(async () => { await c.close(); await a.close(); });
  const h = c.pick(ctx(conn({ address: '127.0.0.2', port: 9 }), { 'x-target': '127.0.0.1:9', 'x-envoy-original-dst-host': '127.0.0.2:9' }))!;
  t.equal(h.endpoint.key, `127.0.0.1:${a.port}`, 'the named header, with the port replaced');
  t.equal(await get(c.dispatcherFor(h)), 'a');
  const viaConn = c.pick(ctx(conn({ address: '127.0.0.1', port: 9 })))!;
  t.equal(viaConn, h, 'the override applies to the connection\'s destination too');
});

t.test('a header without use_http_header is ignored', async (t) => {
  const { c } = runtime();
  t.teardown(() => c.close());
  const h = c.pick(ctx(conn({ address: '127.0.0.1', port: 1000 }), { 'x-envoy-original-dst-host': '127.0.0.2:2000' }))!;
  t.equal(h.endpoint.key, '127.0.0.1:1000');
});

t.test('cleanup: unused hosts leave after cleanup_interval, their pools close; busy or used hosts stay', async (t) => {
  const a = await nameServer('a', { host: '127.0.0.1' });
  const b = await nameServer('b', { host: '127.0.0.2' });
  const { c } = runtime({ cleanupInterval: 40 });
  t.teardown(async () => { await c.close(); await a.close(); await b.close(); });
  const toA = conn({ address: '127.0.0.1', port: a.port });
  const toB = conn({ address: '127.0.0.2', port: b.port });
  const ha = c.pick(ctx(toA))!;
  const da = c.dispatcherFor(ha) as Dispatcher & { closed: boolean };
  t.equal(await get(da), 'a');
  const hb = c.pick(ctx(toB))!;
  hb.activeRequests++; // a request in flight keeps the host
  const keepUsing = setInterval(() => c.pick(ctx(toB)), 10);
  await new Promise((r) => setTimeout(r, 200));
  t.ok(ha.removed, 'unused host removed');
  t.ok(da.closed, 'its pool was closed');
  t.notOk(hb.removed, 'used host kept');
  clearInterval(keepUsing);
  await new Promise((r) => setTimeout(r, 150));
  t.notOk(hb.removed, 'a busy host is kept while its request runs');
  hb.activeRequests--;
  await new Promise((r) => setTimeout(r, 150));
  t.ok(hb.removed, 'then removed');
  t.equal(c.originalDst!.size, 0);
  t.equal(c.stats.membership_total.value, 0);
  const again = c.pick(ctx(toA))!;
  t.not(again, ha, 'a new host is created on the next request');
  t.equal(await get(c.dispatcherFor(again)), 'a');
});

t.test('loop protection: a destination that is one of our listeners is refused and counted', async (t) => {
  const a = await nameServer('a', { host: '127.0.0.1' });
  const listeners = [{ address: '0.0.0.0', port: 15001 }, { address: '127.0.0.3', port: 15006 }];
  const { c, counter } = runtime({}, () => listeners);
  t.teardown(async () => { await c.close(); await a.close(); });
  t.equal(c.pick(ctx(conn({ address: '127.0.0.1', port: 15001 }))), undefined, 'wildcard listener owns the local addresses');
  t.equal(c.pick(ctx(conn({ address: '127.0.0.3', port: 15006 }))), undefined, 'listener on a specific address');
  t.equal(counter('original_dst_loop_refused'), 2);
  t.ok(c.pick(ctx(conn({ address: '127.0.0.4', port: 15006 }))), 'same port, another address: not ours');
  t.ok(c.pick(ctx(conn({ address: '198.18.0.1', port: 15001 }))), 'same port as a wildcard listener, non-local address: not ours');
  t.equal(await get(c.dispatcherFor(c.pick(ctx(conn({ address: '127.0.0.1', port: a.port })))!)), 'a');
});

t.test('parseHostPort: Envoy IP:port syntax only (property)', async (t) => {
  fc.assert(fc.property(fc.ipV4(), fc.integer({ min: 0, max: 65535 }), (ip, port) => {
    const p = parseHostPort(`${ip}:${port}`);
    return p !== undefined && p.address === ip && p.port === port;
  }));
  fc.assert(fc.property(fc.ipV6(), fc.integer({ min: 0, max: 65535 }), (ip, port) => {
    const p = parseHostPort(`[${ip}]:${port}`);
    return p !== undefined && p.address === ip && p.port === port;
  }));
  fc.assert(fc.property(fc.string(), (s) => {
    const p = parseHostPort(s);
    return p === undefined || (net.isIP(p.address) !== 0 && p.port >= 0 && p.port <= 65535);
  }));
  t.equal(parseHostPort('::1:80'), undefined, 'IPv6 needs brackets');
  t.equal(parseHostPort('1.2.3.4:'), undefined);
  t.equal(parseHostPort('localhost:80'), undefined, 'no names');
});

t.test('IPv6 destinations, from the connection and from the header', async (t) => {
  const six = await nameServer('six', { host: '::1' });
  const { c } = runtime({ originalDst: { useHttpHeader: true, httpHeaderName: '' } });
  t.teardown(async () => { await c.close(); await six.close(); });
  const viaConn = c.pick(ctx(conn({ address: '::1', port: six.port })))!;
  t.equal(viaConn.endpoint.key, `[::1]:${six.port}`);
  t.equal(await get(c.dispatcherFor(viaConn)), 'six');
  const viaHeader = c.pick(ctx(undefined, { 'x-envoy-original-dst-host': `[::1]:${six.port}` }))!;
  t.equal(viaHeader, viaConn, 'the same host either way');
});
