import t from 'tap';
import { Diagnostics } from '../../config/src/index.js';
import { decodeFastPathConfig, isFastPathExtension } from '../src/index.js';
import fc from 'fast-check';

const ext = (config: Record<string, unknown>) => ({ name: 'pilotfish.fastpath', typeUrl: 'pilotfish.fastpath', config });
const P = 'bootstrap_extensions[0].typed_config.value';

t.test('a full config decodes with defaults filled in', async (t) => {
  const d = new Diagnostics();
  const c = decodeFastPathConfig(ext({
    interface: 'eth0', mode: 'generic',
    services: [{ cluster: 'web', address: '198.18.0.10', port: 80 }, { cluster: 'dns', address: '2001:2::1', port: 53, protocol: 'UDP', maglev_table_size: 251 }],
    interception: { cgroup: '/sys/fs/cgroup/unified/app', outbound_port: 15001 },
  }), d, P);
  t.same(d.errors, []);
  t.match(c, {
    interface: 'eth0', mode: 'generic', forward: 'fib', flowEvents: true, returnInterfaces: [],
    services: [
      { cluster: 'web', address: '198.18.0.10', port: 80, protocol: 'TCP', userspace: false, maglevTableSize: 65537 },
      { cluster: 'dns', protocol: 'UDP', maglevTableSize: 251 },
    ],
    interception: { outboundPort: 15001, outboundAddress: '127.0.0.1', outboundAddress6: '::1', sockmapPorts: [15001], connect: true, sockmap: true },
  });
});

const bad: [string, Record<string, unknown>, string][] = [
  ['mode', { interface: 'e', mode: 'turbo' }, `${P}.mode`],
  ['port', { interface: 'e', services: [{ cluster: 'a', address: '198.18.0.1', port: 70000 }] }, `${P}.services[0].port`],
  ['address', { interface: 'e', services: [{ cluster: 'a', address: 'web.local', port: 80 }] }, `${P}.services[0].address`],
  ['cluster', { interface: 'e', services: [{ address: '198.18.0.1', port: 80 }] }, `${P}.services[0].cluster`],
  ['protocol', { interface: 'e', services: [{ cluster: 'a', address: '198.18.0.1', port: 80, protocol: 'SCTP' }] }, `${P}.services[0].protocol`],
  ['table size', { interface: 'e', services: [{ cluster: 'a', address: '198.18.0.1', port: 80, maglev_table_size: 100 }] }, `${P}.services[0].maglev_table_size`],
  ['interface', { services: [{ cluster: 'a', address: '198.18.0.1', port: 80 }] }, `${P}.interface`],
  ['duplicate', { interface: 'e', services: [{ cluster: 'a', address: '198.18.0.1', port: 80 }, { cluster: 'b', address: '198.18.0.1', port: 80 }] }, `${P}.services[1]`],
  ['cgroup', { interception: { outbound_port: 15001 } }, `${P}.interception.cgroup`],
  ['outbound', { interception: { cgroup: '/x', outbound_port: 15001, outbound_address: '::1' } }, `${P}.interception.outbound_address`],
];
for (const [name, cfg, path] of bad) {
  t.test(`rejects bad ${name} with its path`, async (t) => {
    const d = new Diagnostics();
    t.equal(decodeFastPathConfig(ext(cfg), d, P), undefined);
    t.ok(d.errors.some((e) => e.path === path), `error at ${path}: ${JSON.stringify(d.errors)}`);
  });
}

t.test('unknown fields warn, not fail', async (t) => {
  const d = new Diagnostics();
  t.ok(decodeFastPathConfig(ext({ interface: 'e', turbo: true }), d, P));
  t.same(d.warnings.map((w) => w.path), [`${P}.turbo`]);
});

t.test('never throws on arbitrary input', async () => {
  fc.assert(fc.property(fc.jsonValue(), (v) => {
    const d = new Diagnostics();
    const r = decodeFastPathConfig(ext({ interface: 'e', services: v as never, interception: v as never }), d, P);
    if (r === undefined && d.errors.length === 0) throw new Error('undefined without an error');
  }), { numRuns: 500 });
});

t.test('recognises the extension by name or TypedStruct type_url', async (t) => {
  t.ok(isFastPathExtension(ext({})));
  t.ok(isFastPathExtension({ name: 'whatever', typeUrl: 'type.googleapis.com/pilotfish.fastpath', config: {} }));
  t.notOk(isFastPathExtension({ name: 'envoy.x', typeUrl: 'type.googleapis.com/envoy.x', config: {} }));
});
