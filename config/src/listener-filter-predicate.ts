import type { ListenerFilterPredicate } from './model.js';
import type { ObjectReader } from './reader.js';

const KINDS = ['or_match', 'and_match', 'not_match', 'any_match', 'destination_port_range'] as const;

/**
 * envoy.config.listener.v3.ListenerFilterChainMatchPredicate (a listener filter's
 * `filter_disabled`): or/and/not of rules, any_match, destination_port_range [start, end).
 * Problems go to r.diag; undefined when the predicate is unusable.
 */
export function decodeListenerFilterPredicate(r: ObjectReader): ListenerFilterPredicate | undefined {
  const set = KINDS.filter((k) => r.has(k));
  if (set.length !== 1) {
    r.accept(...set);
    r.diag.error(r.path, `a ListenerFilterChainMatchPredicate needs exactly one rule (${KINDS.join(', ')}), found ${set.length === 0 ? 'none' : set.join(', ')}`);
    r.finish();
    return undefined;
  }
  const kind = set[0]!;
  let out: ListenerFilterPredicate | undefined;
  switch (kind) {
    case 'or_match':
    case 'and_match': {
      const m = r.object(kind);
      const rules = (m?.objects('rules') ?? []).map(decodeListenerFilterPredicate);
      if (m && rules.length < 2) r.diag.error(m.child('rules'), 'needs at least 2 rules');
      m?.finish();
      if (rules.every((x): x is ListenerFilterPredicate => x !== undefined)) out = { kind: kind === 'or_match' ? 'or' : 'and', rules };
      break;
    }
    case 'not_match': {
      const m = r.object(kind);
      const rule = m && decodeListenerFilterPredicate(m);
      if (rule) out = { kind: 'not', rule };
      break;
    }
    case 'any_match':
      if (r.bool('any_match', false) !== true) r.diag.error(r.child('any_match'), 'must be true');
      else out = { kind: 'any' };
      break;
    case 'destination_port_range': {
      const m = r.object(kind);
      const start = m?.int('start', 0, 0, 65536) ?? 0;
      const end = m?.int('end', 0, 0, 65536) ?? 0;
      m?.finish();
      if (end <= start) r.diag.error(r.child(kind), `end (${end}) must be greater than start (${start})`);
      else out = { kind: 'port', start, end };
      break;
    }
  }
  r.finish();
  return out;
}

/** Whether the predicate holds for a connection to `destinationPort` (the filter is then skipped). */
export function listenerFilterPredicateMatches(p: ListenerFilterPredicate, destinationPort: number): boolean {
  switch (p.kind) {
    case 'any': return true;
    case 'port': return destinationPort >= p.start && destinationPort < p.end;
    case 'not': return !listenerFilterPredicateMatches(p.rule, destinationPort);
    case 'or': return p.rules.some((x) => listenerFilterPredicateMatches(x, destinationPort));
    case 'and': return p.rules.every((x) => listenerFilterPredicateMatches(x, destinationPort));
  }
}
