import t from 'tap';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster } from '../helpers.js';

/** hash_policy end to end: a request's key decides its host on a ring-hash cluster. */
t.test('header hash policy pins a key to one host; several policies combine', async (t) => {
  const a = await startUpstream(t, 'a');
  const b = await startUpstream(t, 'b');
  const p = await startProxyYaml(t, bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/two" }
                route: { cluster: ring, hash_policy: [{ header: { header_name: x-user } }, { header: { header_name: x-tenant } }] }
              - match: { prefix: "/" }
                route: { cluster: ring, hash_policy: [{ header: { header_name: x-user }, terminal: true }, { connection_properties: { source_ip: true } }] }`,
  staticCluster('ring', [a.port, b.port], '    lb_policy: RING_HASH')));
  const hostOf = async (path: string, headers: Record<string, string>): Promise<string> => {
    const r = await get(p.port(), path, headers);
    t.equal(r.status, 200);
    return String(r.headers['x-upstream']);
  };
  const seen = new Set<string>();
  for (let u = 0; u < 16; u++) {
    const first = await hostOf('/', { 'x-user': `user-${u}` });
    seen.add(first);
    for (let i = 0; i < 3; i++) t.equal(await hostOf('/', { 'x-user': `user-${u}` }), first, `user-${u} stays on ${first}`);
  }
  t.equal(seen.size, 2, 'keys spread over both hosts');
  const two = new Set<string>();
  for (let u = 0; u < 16; u++) {
    const h = await hostOf('/two', { 'x-user': `u${u}`, 'x-tenant': 'same' });
    t.equal(await hostOf('/two', { 'x-user': `u${u}`, 'x-tenant': 'same' }), h, 'combined hash is stable');
    two.add(h);
  }
  t.equal(two.size, 2, 'the first key still moves requests when combined with a constant second one');
});
