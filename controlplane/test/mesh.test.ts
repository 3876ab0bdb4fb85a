import t from 'tap';
import fc from 'fast-check';
import { compileMesh, MeshError, parseMesh, parseMeshText } from '../src/index.js';
import { TYPE_URLS, decodeResourceJson, encodeJson } from '../../xds-client/src/index.js';
import { Diagnostics, decodeCluster, decodeClusterLoadAssignment, decodeListener, decodeRouteConfiguration } from '../../config/src/index.js';

const good = {
  listeners: [{ name: 'ingress', port: 10000, routes: [{ prefix: '/api', service: 'api', timeout: '5s' }, { prefix: '/', split: { web: 90, api: 10 } }] }],
  services: [
    { name: 'web', lb: 'least_request', connect_timeout: '250ms', protocol: 'http2', endpoints: [{ address: '10.0.0.1', port: 80, zone: 'a' }, { address: '10.0.0.2', port: 80, zone: 'b', terminating: true }] },
    { name: 'api', leds: true, endpoints: [{ address: '10.0.1.1', port: 81 }] },
  ],
};

t.test('compiles to resources our own decoders accept after a wire round trip', async (t) => {
  const res = compileMesh(parseMesh(good));
  const decoders: Record<string, (j: unknown, d: Diagnostics, p: string) => unknown> = {
    [TYPE_URLS.listener]: decodeListener,
    [TYPE_URLS.route]: decodeRouteConfiguration,
    [TYPE_URLS.cluster]: decodeCluster,
    [TYPE_URLS.endpoint]: decodeClusterLoadAssignment,
  };
  for (const [url, dec] of Object.entries(decoders)) {
    for (const [name, json] of res.get(url)!) {
      const diag = new Diagnostics();
      const v = dec(decodeResourceJson(url, encodeJson(url, json)), diag, name);
      t.ok(v, `${name} decodes`);
      t.same(diag.errors, [], `${name} has no errors`);
    }
  }
  t.equal(res.get(TYPE_URLS.lbEndpoint)!.size, 1);
  const cla = res.get(TYPE_URLS.endpoint)!.get('web') as { endpoints: { lb_endpoints: { health_status: string }[] }[] };
  t.same(cla.endpoints.map((l) => l.lb_endpoints[0]!.health_status), ['HEALTHY', 'DRAINING']);
});

const bad: [string, unknown, RegExp][] = [
  ['unknown top-level', { servicez: [] }, /^\(mesh\)\.servicez: unknown field/],
  ['port range', { services: [{ name: 's', endpoints: [{ address: '10.0.0.1', port: 70000 }] }] }, /^services\[0\]\.endpoints\[0\]\.port: must be an integer 1\.\.65535$/],
  ['address', { services: [{ name: 's', endpoints: [{ address: 'web.local', port: 80 }] }] }, /^services\[0\]\.endpoints\[0\]\.address: must be an IP address$/],
  ['lb', { services: [{ name: 's', lb: 'fastest' }] }, /^services\[0\]\.lb: must be one of/],
  ['duplicate', { services: [{ name: 's' }, { name: 's' }] }, /^services\[1\]\.name: duplicate service "s"$/],
  ['unknown service', { services: [], listeners: [{ name: 'l', port: 1, routes: [{ prefix: '/', service: 'x' }] }] }, /^listeners\[0\]\.routes\[0\]\.service: unknown service "x"$/],
  ['prefix and path', { services: [{ name: 's' }], listeners: [{ name: 'l', port: 1, routes: [{ prefix: '/', path: '/a', service: 's' }] }] }, /needs exactly one of prefix, path/],
  ['timeout', { services: [{ name: 's' }], listeners: [{ name: 'l', port: 1, routes: [{ prefix: '/', service: 's', timeout: 'soon' }] }] }, /routes\[0\]\.timeout: must be a duration/],
  ['listener port required', { listeners: [{ name: 'l' }] }, /^listeners\[0\]\.port: is required$/],
];

for (const [name, doc, re] of bad) {
  t.test(`rejects: ${name}`, async (t) => {
    t.throws(() => parseMesh(doc), re);
  });
}

t.test('invalid YAML is one line', async (t) => {
  t.throws(() => parseMeshText('services: [\n  - {'), /^\(mesh\): invalid YAML: [^\n]*$/);
});

t.test('property: parseMesh only ever throws MeshError with a one-line message', async (t) => {
  const value = fc.oneof(fc.constant(undefined), fc.integer({ min: -5, max: 70000 }), fc.string({ maxLength: 8 }), fc.boolean(), fc.constant('10.0.0.1'));
  const endpoint = fc.record({ address: value, port: value, zone: value, weight: value, ready: value, serving: value, terminating: value }, { requiredKeys: [] });
  const service = fc.record({ name: fc.oneof(fc.constant('s'), value), lb: value, leds: value, endpoints: fc.array(endpoint, { maxLength: 3 }) }, { requiredKeys: [] });
  fc.assert(
    fc.property(fc.record({ services: fc.array(service, { maxLength: 3 }) }), (doc) => {
      try {
        const m = parseMesh(doc);
        compileMesh(m);
      } catch (e) {
        if (!(e instanceof MeshError)) throw e;
        if (e.message.includes('\n')) throw new Error('multi-line message');
      }
    }),
    { numRuns: 300 },
  );
  t.pass();
});

t.test('the bundled example parses and compiles', async (t) => {
  const { readFileSync } = await import('node:fs');
  const file = new URL('../examples/mesh.yaml', import.meta.url);
  const res = compileMesh(parseMeshText(readFileSync(file, 'utf8')));
  t.equal(res.get(TYPE_URLS.cluster)!.size, 3);
  t.equal(res.get(TYPE_URLS.lbEndpoint)!.size, 2);
});
