import t from 'tap';
import fc from 'fast-check';
import { isIP } from 'node:net';
import { Diagnostics, ObjectReader } from '../src/index.js';
import { classifyHost, decodeAddress, decodeCidrRange } from '../src/address.js';
import { decodeFilterChainMatch } from '../src/chain-match.js';
import { ENUMS } from '../src/enums.js';
import { enumValue } from '../src/reader.js';

const runs = { numRuns: 300 };

function reader(v: unknown): { r: ObjectReader; diag: Diagnostics } {
  const diag = new Diagnostics();
  return { r: ObjectReader.of(v, 'x', diag)!, diag };
}

/** The same letters with each one's case chosen by `flips`. */
const recase = (s: string, flips: readonly boolean[]) =>
  [...s].map((c, i) => (flips[i % Math.max(1, flips.length)] ? c.toLowerCase() : c.toUpperCase())).join('');

t.test('every enum decodes its names in any case, and its numbers, to the same value', async (t) => {
  for (const [name, values] of Object.entries(ENUMS) as [string, readonly (string | null)[]][]) {
    const named = values.filter((v): v is string => v !== null);
    fc.assert(fc.property(fc.constantFrom(...named), fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), (v, flips) => {
      const { r, diag } = reader({ f: recase(v, flips) });
      return r.enumOf('f', values, named[0]!) === v && diag.errors.length === 0;
    }), runs);
    values.forEach((v, i) => {
      t.equal(enumValue(i, values), v ?? undefined, `${name}: number ${i} is ${v ?? 'retired'}`);
    });
    // A wrong value's error lists every valid name and nothing else (no placeholders for retired numbers).
    const { r, diag } = reader({ f: 'NOT_A_VALUE' });
    r.enumOf('f', values, named[0]!);
    t.same(diag.errors.map((e) => e.message), [`expected one of ${named.join(', ')}, got "NOT_A_VALUE"`], `${name}: error lists ${named.length} names`);
    t.notOk(named.some((n) => /^_/.test(n)), `${name}: no placeholder names`);
  }
});

t.test('retired enum numbers are refused, not mapped to a neighbour', async (t) => {
  const { r, diag } = reader({ lb: 4, api: 4 });
  r.enumOf('lb', ENUMS['cluster.Cluster.LbPolicy'], 'ROUND_ROBIN');
  r.enumOf('api', ENUMS['core.ApiConfigSource.ApiType'], 'GRPC');
  t.equal(diag.errors.length, 2);
  t.equal(enumValue(5, ENUMS['core.ApiConfigSource.ApiType']), 'AGGREGATED_GRPC', 'proto number 5, not index-shifted');
});

const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();
const cidr = fc.oneof(
  fc.tuple(ipv4, fc.integer({ min: 0, max: 32 })),
  fc.tuple(ipv6, fc.integer({ min: 0, max: 128 })),
);

t.test('CidrRange: decode round-trips address and prefix length (plain or UInt32Value)', async () => {
  fc.assert(fc.property(cidr, fc.boolean(), ([addr, len], wrapped) => {
    const { r, diag } = reader({ address_prefix: addr, prefix_len: wrapped ? { value: len } : len });
    const c = decodeCidrRange(r);
    return diag.errors.length === 0 && c !== undefined && c.addressPrefix === addr && c.prefixLen === len;
  }), runs);
});

t.test('CidrRange: lengths beyond the family and non-IP prefixes are refused by path', async () => {
  fc.assert(fc.property(
    fc.oneof(
      fc.tuple(ipv4, fc.integer({ min: 33, max: 1000 })),
      fc.tuple(ipv6, fc.integer({ min: 129, max: 1000 })),
      fc.tuple(fc.domain(), fc.integer({ min: 0, max: 32 })),
    ),
    ([addr, len]) => {
      const { r, diag } = reader({ address_prefix: addr, prefix_len: len });
      return decodeCidrRange(r) === undefined && diag.errors.length === 1 && /^x\.(address_prefix|prefix_len)$/.test(diag.errors[0]!.path);
    },
  ), runs);
});

t.test('address decoding never throws on arbitrary JSON', async () => {
  fc.assert(fc.property(fc.jsonValue(), fc.boolean(), (v, dns) => {
    const diag = new Diagnostics();
    const r = ObjectReader.of(v, 'a', diag);
    const a = r ? decodeAddress(r, dns) : undefined;
    // Either an address or at least one reason why not.
    return a !== undefined || diag.errors.length > 0;
  }), runs);
  fc.assert(fc.property(fc.dictionary(fc.constantFrom('socket_address', 'pipe', 'envoy_internal_address'), fc.jsonValue()), (v) => {
    const diag = new Diagnostics();
    const a = decodeAddress(ObjectReader.of(v, 'a', diag)!, true);
    return a !== undefined || diag.errors.length > 0;
  }), runs);
});

const hostname = fc.oneof(fc.domain(), fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}[a-z0-9]$/));

t.test('address classification: IPs everywhere, host names only for DNS clusters, pipes by path', async () => {
  fc.assert(fc.property(fc.oneof(ipv4, ipv6), fc.integer({ min: 0, max: 65535 }), fc.boolean(), (ip, port, dns) => {
    const diag = new Diagnostics();
    const a = decodeAddress(ObjectReader.of({ socket_address: { address: ip, port_value: port } }, 'a', diag)!, dns);
    return diag.errors.length === 0 && a?.address === ip && a.port === port && a.pipe === undefined && classifyHost(ip) === 'ip';
  }), runs);
  fc.assert(fc.property(hostname.filter((h) => isIP(h) === 0), fc.integer({ min: 1, max: 65535 }), (h, port) => {
    const dns = new Diagnostics();
    const ok = decodeAddress(ObjectReader.of({ socket_address: { address: h, port_value: port } }, 'a', dns)!, true);
    const st = new Diagnostics();
    const refused = decodeAddress(ObjectReader.of({ socket_address: { address: h, port_value: port } }, 'a', st)!, false);
    return ok?.address === h && dns.errors.length === 0 && refused === undefined
      && st.errors.length === 1 && st.errors[0]!.path === 'a.socket_address.address';
  }), runs);
  fc.assert(fc.property(fc.stringMatching(/^[./@]?[a-zA-Z0-9_./-]{1,60}$/), (path) => {
    const diag = new Diagnostics();
    const a = decodeAddress(ObjectReader.of({ pipe: { path } }, 'a', diag)!, false);
    return diag.errors.length === 0 && a?.address === path && a.port === 0 && a.pipe?.path === path && a.pipe.mode === 0;
  }), runs);
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 30 }).filter((s) => /[\s/:]/.test(s) && isIP(s) === 0), (bad) => {
    const diag = new Diagnostics();
    return decodeAddress(ObjectReader.of({ socket_address: { address: bad, port_value: 80 } }, 'a', diag)!, true) === undefined && diag.errors.length === 1;
  }), runs);
});

const wireCidr = cidr.map(([address_prefix, prefix_len]) => ({ address_prefix, prefix_len }));
const fcm = fc.record({
  destination_port: fc.integer({ min: 1, max: 65535 }),
  prefix_ranges: fc.array(wireCidr, { maxLength: 3 }),
  direct_source_prefix_ranges: fc.array(wireCidr, { maxLength: 3 }),
  source_type: fc.constantFrom('ANY', 'SAME_IP_OR_LOOPBACK', 'EXTERNAL', 'external', 'Same_Ip_Or_Loopback'),
  source_prefix_ranges: fc.array(wireCidr, { maxLength: 3 }),
  source_ports: fc.array(fc.integer({ min: 1, max: 65535 }), { maxLength: 4 }),
  server_names: fc.array(fc.oneof(fc.domain(), fc.domain().map((d) => `*.${d}`.toUpperCase())), { maxLength: 3 }),
  transport_protocol: fc.constantFrom('tls', 'raw_buffer'),
  application_protocols: fc.array(fc.constantFrom('h2', 'http/1.1', 'istio-peer-exchange'), { maxLength: 3 }),
}, { requiredKeys: [] });

t.test('filter_chain_match: every criterion is preserved (server names lower-cased)', async () => {
  fc.assert(fc.property(fcm, (m) => {
    const { r, diag } = reader(m);
    const d = decodeFilterChainMatch(r);
    const ranges = (rs: readonly { address_prefix: string; prefix_len: number }[] | undefined) => (rs ?? []).map((c) => ({ addressPrefix: c.address_prefix, prefixLen: c.prefix_len }));
    const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    return diag.errors.length === 0 && diag.warnings.length === 0
      && d.destinationPort === m.destination_port
      && same(d.prefixRanges, ranges(m.prefix_ranges))
      && same(d.directSourcePrefixRanges, ranges(m.direct_source_prefix_ranges))
      && same(d.sourcePrefixRanges, ranges(m.source_prefix_ranges))
      && d.sourceType === (m.source_type ?? 'ANY').toUpperCase()
      && same(d.sourcePorts, m.source_ports ?? [])
      && same(d.serverNames, (m.server_names ?? []).map((s) => s.toLowerCase()))
      && d.transportProtocol === m.transport_protocol
      && same(d.applicationProtocols, m.application_protocols ?? []);
  }), runs);
});

t.test('filter_chain_match decoding never throws on arbitrary JSON objects', async () => {
  const key = fc.constantFrom('destination_port', 'prefix_ranges', 'direct_source_prefix_ranges', 'source_type', 'source_prefix_ranges',
    'source_ports', 'server_names', 'transport_protocol', 'application_protocols', 'address_suffix', 'bogus');
  fc.assert(fc.property(fc.dictionary(key, fc.jsonValue()), (m) => {
    const { r } = reader(m);
    const d = decodeFilterChainMatch(r);
    return Array.isArray(d.prefixRanges) && Array.isArray(d.serverNames);
  }), runs);
});
