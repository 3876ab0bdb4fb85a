import t from 'tap';
import fc from 'fast-check';
import { BlockList } from 'node:net';
import { clearEdgeOnly, clearInternalOnly, EDGE_ONLY, InternalAddresses, INTERNAL_ONLY, xffAddress } from '../../src/http/internal-request.js';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster } from '../helpers.js';

t.test('internal address matching agrees with node\'s BlockList', async (t) => {
  const ip = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
  fc.assert(fc.property(ip, fc.integer({ min: 0, max: 32 }), ip, (prefix, len, probe) => {
    const ours = new InternalAddresses([{ addressPrefix: prefix, prefixLen: len }]);
    const ref = new BlockList();
    ref.addSubnet(prefix, len, 'ipv4');
    if (ours.isInternal(probe) !== ref.check(probe, 'ipv4')) throw new Error(`${probe} in ${prefix}/${len}`);
    if (ours.isInternal(`::ffff:${probe}`) !== ref.check(probe, 'ipv4')) throw new Error('v4-mapped');
  }), { numRuns: 3000 });
  const d = new InternalAddresses([]);
  for (const a of ['10.1.2.3', '172.31.0.1', '192.168.9.9', '127.0.0.1', '::1', 'fd12::1']) t.ok(d.isInternal(a), `${a} internal by default`);
  for (const a of ['172.32.0.1', '8.8.8.8', '2001:db8::1', 'fe80::1', 'not-an-ip', '1.2.3', '1.2.3.4.5', '256.1.1.1', '']) t.notOk(d.isInternal(a), `${a} external`);
  t.equal(xffAddress('1.1.1.1, 10.0.0.1', 0), '10.0.0.1');
  t.equal(xffAddress('1.1.1.1, 10.0.0.1', 1), '1.1.1.1');
  t.equal(xffAddress('1.1.1.1', 1), undefined);
  t.equal(xffAddress('garbage', 0), undefined);
});

t.test('the spelled-out removals clear exactly the listed headers', async (t) => {
  const others = { host: 'a', 'x-envoy-attempt-count': '1', 'x-envoy-original-path': '/p', 'x-request-id': 'r' };
  const h: Record<string, string | string[] | undefined> = { ...others };
  for (const n of [...INTERNAL_ONLY, ...EDGE_ONLY]) h[n] = 'v';
  clearInternalOnly(h);
  for (const n of INTERNAL_ONLY) t.equal(h[n], undefined, `${n} cleared`);
  for (const n of EDGE_ONLY) t.equal(h[n], 'v', `${n} kept by clearInternalOnly`);
  clearEdgeOnly(h);
  for (const n of EDGE_ONLY) t.equal(h[n], undefined, `${n} cleared`);
  for (const [k, v] of Object.entries(others)) t.equal(h[k], v, `${k} untouched`);
});

t.test('x-envoy-internal and external request sanitising (YAML)', async (t) => {
  const up = await startUpstream(t, 'up');
  const vh = `
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up } }]`;
  const spoof = { 'x-envoy-internal': 'true', 'x-envoy-retry-on': '5xx', 'x-envoy-upstream-rq-timeout-ms': '1', 'x-envoy-decorator-operation': 'op' };

  const edge = await startProxyYaml(t, bootstrapYaml(vh, staticCluster('up', [up.port]), '          use_remote_address: true'));
  await get(edge.port(), '/', spoof);
  let h = up.requests.at(-1)!.headers;
  t.equal(h['x-envoy-internal'], 'true', 'loopback peer without XFF: internal');
  t.equal(h['x-envoy-retry-on'], '5xx', 'internal requests keep x-envoy control headers');
  t.notOk(h['x-envoy-external-address']);

  await get(edge.port(), '/', { ...spoof, 'x-forwarded-for': '203.0.113.7' });
  h = up.requests.at(-1)!.headers;
  t.notOk(h['x-envoy-internal'], 'a client-set x-envoy-internal is removed from an external request');
  t.notOk(h['x-envoy-retry-on'], 'x-envoy-retry-on removed');
  t.notOk(h['x-envoy-upstream-rq-timeout-ms'], 'x-envoy-upstream-rq-timeout-ms removed');
  t.notOk(h['x-envoy-decorator-operation'], 'edge: decorator removed');
  t.equal(h['x-envoy-external-address'], '127.0.0.1', 'edge: external address set');

  const custom = await startProxyYaml(t, bootstrapYaml(vh, staticCluster('up', [up.port]),
    '          use_remote_address: true\n          internal_address_config: { cidr_ranges: [{ address_prefix: 192.0.2.0, prefix_len: 24 }] }'));
  await get(custom.port(), '/', spoof);
  h = up.requests.at(-1)!.headers;
  t.notOk(h['x-envoy-internal'], 'configured ranges replace the defaults: loopback is external');
  t.equal(h['x-envoy-external-address'], '127.0.0.1');

  const mid = await startProxyYaml(t, bootstrapYaml(vh, staticCluster('up', [up.port])));
  await get(mid.port(), '/', { ...spoof, 'x-forwarded-for': '10.0.0.5' });
  h = up.requests.at(-1)!.headers;
  t.equal(h['x-envoy-internal'], 'true', 'not edge: a single internal XFF address is internal');
  await get(mid.port(), '/', { ...spoof, 'x-forwarded-for': '10.0.0.5, 10.0.0.6' });
  h = up.requests.at(-1)!.headers;
  t.notOk(h['x-envoy-internal'], 'two XFF addresses: external');
  t.notOk(h['x-envoy-external-address'], 'not edge: no external address');
  t.equal(h['x-envoy-decorator-operation'], 'op', 'not edge: decorator kept');
  await get(mid.port(), '/', spoof);
  t.notOk(up.requests.at(-1)!.headers['x-envoy-internal'], 'no XFF: external (Envoy does not look at the peer)');
});
