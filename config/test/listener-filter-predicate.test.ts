import t from 'tap';
import fc from 'fast-check';
import { decodeListener, decodeListenerFilterPredicate, Diagnostics, listenerFilterPredicateMatches, ObjectReader } from '../src/index.js';

// filter_disabled (ListenerFilterChainMatchPredicate): decoded from random trees and
// evaluated against a reference written independently on the JSON.

type P = { any_match: true } | { destination_port_range: { start: number; end: number } } | { not_match: P } | { or_match: { rules: P[] } } | { and_match: { rules: P[] } };

const pred: fc.Arbitrary<P> = fc.letrec<{ p: P }>((tie) => ({
  p: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant<P>({ any_match: true }),
    fc.tuple(fc.integer({ min: 0, max: 65534 }), fc.integer({ min: 1, max: 200 })).map(([s, w]): P => ({ destination_port_range: { start: s, end: Math.min(65536, s + w) } })),
    tie('p').map((x): P => ({ not_match: x })),
    fc.array(tie('p'), { minLength: 2, maxLength: 3 }).map((rules): P => ({ or_match: { rules } })),
    fc.array(tie('p'), { minLength: 2, maxLength: 3 }).map((rules): P => ({ and_match: { rules } })),
  ),
})).p;

function reference(p: P, port: number): boolean {
  if ('any_match' in p) return true;
  if ('destination_port_range' in p) return port >= p.destination_port_range.start && port < p.destination_port_range.end;
  if ('not_match' in p) return !reference(p.not_match, port);
  if ('or_match' in p) return p.or_match.rules.some((r) => reference(r, port));
  return p.and_match.rules.every((r) => reference(r, port));
}

t.test('decoded predicates agree with the reference on every port tried', async () => {
  fc.assert(fc.property(pred, fc.array(fc.integer({ min: 0, max: 65535 }), { minLength: 1, maxLength: 8 }), (p, ports) => {
    const diag = new Diagnostics();
    const d = decodeListenerFilterPredicate(ObjectReader.of(p, 'x', diag)!);
    if (!d || diag.errors.length > 0) return false;
    const near = p && 'destination_port_range' in p ? [p.destination_port_range.start, p.destination_port_range.end - 1, p.destination_port_range.end] : [];
    return [...ports, ...near].every((port) => listenerFilterPredicateMatches(d, port) === reference(p, port));
  }), { numRuns: 400 });
});

t.test('bad predicates are refused with the reason; a listener keeps its filter with the predicate', async (t) => {
  for (const [bad, msg] of [
    [{}, /needs exactly one rule/],
    [{ any_match: true, not_match: { any_match: true } }, /found not_match, any_match/],
    [{ destination_port_range: { start: 10, end: 10 } }, /end \(10\) must be greater than start \(10\)/],
    [{ or_match: { rules: [{ any_match: true }] } }, /needs at least 2 rules/],
    [{ any_match: false }, /must be true/],
  ] as const) {
    const diag = new Diagnostics();
    decodeListenerFilterPredicate(ObjectReader.of(bad, 'x', diag)!);
    t.match(diag.errors.map((e) => e.message).join('\n'), msg, JSON.stringify(bad));
  }
  const diag = new Diagnostics();
  const l = decodeListener({
    name: 'l', address: { socket_address: { address: '0.0.0.0', port_value: 15006 } },
    listener_filters: [{ name: 'envoy.filters.listener.http_inspector', filter_disabled: { destination_port_range: { start: 9080, end: 9081 } } }],
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 's', cluster: 'c' } }] }],
  }, diag, 'l');
  t.same(diag.warnings, [], 'no "ignored" warning any more');
  t.same(l?.listenerFilters[0]?.filterDisabled, { kind: 'port', start: 9080, end: 9081 });
});
