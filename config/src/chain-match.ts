import { ENUMS } from './enums.js';
import type { CidrRange, FilterChainMatch, FilterChainMatcherNode, NetworkMatchInput } from './model.js';
import { decodeCidrRange } from './address.js';
import { ObjectReader } from './reader.js';
import { decodeAny, TYPE_PREFIX } from './typed.js';

const SOURCE_TYPES = ENUMS['listener.FilterChainMatch.ConnectionSourceType'];

function cidrs(r: ObjectReader, field: string): CidrRange[] {
  const out: CidrRange[] = [];
  for (const c of r.objects(field)) {
    const range = decodeCidrRange(c);
    if (range) out.push(range);
  }
  return out;
}

/** envoy.config.listener.v3.FilterChainMatch: every criterion Envoy selects on. */
export function decodeFilterChainMatch(m: ObjectReader): FilterChainMatch {
  const destinationPort = m.optionalInt('destination_port', 1, 65535);
  const prefixRanges = cidrs(m, 'prefix_ranges');
  const directSourcePrefixRanges = cidrs(m, 'direct_source_prefix_ranges');
  const sourceType = m.enumOf('source_type', SOURCE_TYPES, 'ANY');
  const sourcePrefixRanges = cidrs(m, 'source_prefix_ranges');
  const sourcePorts: number[] = [];
  for (const { value, path } of m.array('source_ports')) {
    if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535) sourcePorts.push(value);
    else m.diag.error(path, `expected a port between 1 and 65535, got ${JSON.stringify(value) ?? 'nothing'}`);
  }
  const serverNames = m.strings('server_names').map((s) => s.toLowerCase());
  const transportProtocol = m.string('transport_protocol');
  const applicationProtocols = m.strings('application_protocols');
  // address_suffix/suffix_len are "not implemented" in Envoy itself; finish() reports them.
  m.finish();
  return {
    prefixRanges, directSourcePrefixRanges, sourceType, sourcePrefixRanges, sourcePorts, serverNames, applicationProtocols,
    ...(destinationPort !== undefined ? { destinationPort } : {}),
    ...(transportProtocol !== undefined && transportProtocol !== '' ? { transportProtocol } : {}),
  };
}

// ---------------------------------------------------------------- filter_chain_matcher

const INPUT_PREFIX = TYPE_PREFIX + 'envoy.extensions.matching.common_inputs.network.v3.';
const INPUTS: Record<string, NetworkMatchInput> = {
  DestinationPortInput: 'destination_port',
  DestinationIPInput: 'destination_ip',
  SourceIPInput: 'source_ip',
  SourcePortInput: 'source_port',
  DirectSourceIPInput: 'direct_source_ip',
  SourceTypeInput: 'source_type',
  ServerNameInput: 'server_name',
  TransportProtocolInput: 'transport_protocol',
  ApplicationProtocolInput: 'application_protocol',
};
const IP_INPUTS: ReadonlySet<NetworkMatchInput> = new Set(['destination_ip', 'source_ip', 'direct_source_ip']);
const IP_MATCHER_TYPE = TYPE_PREFIX + 'xds.type.matcher.v3.IPMatcher';
const STRING_VALUE_TYPE = TYPE_PREFIX + 'google.protobuf.StringValue';

/**
 * Listener.filter_chain_matcher (xds.type.matcher.v3.Matcher) over Envoy's network inputs:
 * matcher_tree with exact_match_map, prefix_match_map or an IPMatcher custom_match (its
 * ranges become `prefix` entries keyed "addr/len"); actions are StringValues naming a filter
 * chain in `chainNames`. matcher_list is refused (pilotfish evaluates trees only).
 */
export function decodeFilterChainMatcher(r: ObjectReader, chainNames: ReadonlySet<string>): FilterChainMatcherNode | undefined {
  const before = r.diag.errors.length;
  const node = decodeMatcher(r, chainNames, 0);
  return r.diag.errors.length > before ? undefined : node;
}

const MAX_DEPTH = 16;

function decodeMatcher(r: ObjectReader, chains: ReadonlySet<string>, depth: number): FilterChainMatcherNode | undefined {
  if (depth > MAX_DEPTH) {
    r.diag.error(r.path, `matchers nest deeper than ${MAX_DEPTH} levels`);
    return undefined;
  }
  const which = r.oneof(['matcher_tree', 'matcher_list'], true, 'a matcher,');
  const onNoMatchR = r.object('on_no_match');
  const onNoMatch = onNoMatchR ? decodeOnMatch(onNoMatchR, chains, depth) : undefined;
  if (which === 'matcher_list') {
    r.accept('matcher_list');
    r.diag.error(r.child('matcher_list'), 'not supported by pilotfish for filter_chain_matcher; use matcher_tree');
    r.finish();
    return undefined;
  }
  const t = which === 'matcher_tree' ? r.object('matcher_tree') : undefined;
  r.finish();
  if (!t) return undefined;
  const inR = t.object('input');
  if (!inR) t.diag.error(t.child('input'), 'is required');
  const input = inR ? decodeInput(inR) : undefined;
  const tree = t.oneof(['exact_match_map', 'prefix_match_map', 'custom_match'], true, 'a tree type,');
  const exact = new Map<string, FilterChainMatcherNode>();
  const prefix = new Map<string, FilterChainMatcherNode>();
  if (tree === 'exact_match_map' || tree === 'prefix_match_map') {
    const mm = t.object(tree);
    const map = mm?.object('map');
    if (mm && !map) mm.diag.error(mm.child('map'), 'is required');
    mm?.finish();
    if (map) {
      const keys = Object.keys(map.raw);
      if (keys.length === 0) map.diag.error(map.path, 'must have at least one entry');
      for (const key of keys) {
        const om = map.object(key);
        const node = om ? decodeOnMatch(om, chains, depth) : undefined;
        if (node) (tree === 'exact_match_map' ? exact : prefix).set(key, node);
      }
      map.finish();
    }
  } else if (tree === 'custom_match') {
    const cm = t.object('custom_match');
    if (cm) decodeIpMatcher(cm, chains, depth, input, prefix);
  }
  t.finish();
  if (!input) return undefined;
  return { kind: 'tree', input, exact, prefix, ...(onNoMatch ? { onNoMatch } : {}) };
}

function decodeInput(r: ObjectReader): NetworkMatchInput | undefined {
  r.string('name');
  const tc = r.get('typed_config');
  r.finish();
  if (tc === undefined) {
    r.diag.error(r.child('typed_config'), 'is required');
    return undefined;
  }
  const any = decodeAny(tc, r.diag, r.child('typed_config'));
  if (!any) return undefined;
  const input = any.typeUrl.startsWith(INPUT_PREFIX) ? INPUTS[any.typeUrl.slice(INPUT_PREFIX.length)] : undefined;
  if (input === undefined) {
    r.diag.error(`${r.child('typed_config')}.@type`, `matching input ${any.typeUrl} is not supported by pilotfish (supported: ${Object.keys(INPUTS).join(', ')})`);
    return undefined;
  }
  // The network inputs are empty messages; anything inside is reported.
  ObjectReader.of(any.config, r.child('typed_config'), r.diag)?.finish();
  return input;
}

function decodeIpMatcher(
  cm: ObjectReader, chains: ReadonlySet<string>, depth: number, input: NetworkMatchInput | undefined,
  prefix: Map<string, FilterChainMatcherNode>,
): void {
  cm.string('name');
  const tc = cm.get('typed_config');
  cm.finish();
  const any = tc === undefined ? undefined : decodeAny(tc, cm.diag, cm.child('typed_config'));
  if (!any) {
    if (tc === undefined) cm.diag.error(cm.child('typed_config'), 'is required');
    return;
  }
  if (any.typeUrl !== IP_MATCHER_TYPE) {
    cm.diag.error(`${cm.child('typed_config')}.@type`, `custom matcher ${any.typeUrl} is not supported by pilotfish (supported: xds.type.matcher.v3.IPMatcher)`);
    return;
  }
  if (input !== undefined && !IP_INPUTS.has(input)) {
    cm.diag.error(cm.path, `an IPMatcher needs an IP input (DestinationIPInput, SourceIPInput, DirectSourceIPInput), not ${input}`);
  }
  const ip = ObjectReader.of(any.config, cm.child('typed_config'), cm.diag);
  if (!ip) return;
  for (const rm of ip.objects('range_matchers')) {
    const ranges = cidrs(rm, 'ranges');
    if (ranges.length === 0 && !rm.has('ranges')) rm.diag.error(rm.child('ranges'), 'at least one range is required');
    const om = rm.object('on_match');
    if (!om) rm.diag.error(rm.child('on_match'), 'is required');
    const node = om ? decodeOnMatch(om, chains, depth) : undefined;
    if (rm.bool('exclusive', false)) {
      rm.diag.warn(rm.child('exclusive'), 'not supported by pilotfish; ignored (the longest matching range decides)');
    }
    rm.finish();
    if (!node) continue;
    for (const c of ranges) {
      const key = `${c.addressPrefix}/${c.prefixLen}`;
      if (!prefix.has(key)) prefix.set(key, node); // the first listing of a range wins, as Envoy's trie does
    }
  }
  ip.finish();
}

function decodeOnMatch(r: ObjectReader, chains: ReadonlySet<string>, depth: number): FilterChainMatcherNode | undefined {
  const which = r.oneof(['matcher', 'action'], true, 'an on_match,');
  if (r.bool('keep_matching', false)) r.diag.error(r.child('keep_matching'), 'not supported by pilotfish for filter_chain_matcher');
  let out: FilterChainMatcherNode | undefined;
  if (which === 'matcher') {
    const m = r.object('matcher');
    out = m ? decodeMatcher(m, chains, depth + 1) : undefined;
  } else if (which === 'action') {
    const a = r.object('action');
    if (a) out = decodeAction(a, chains);
  }
  r.finish();
  return out;
}

function decodeAction(a: ObjectReader, chains: ReadonlySet<string>): FilterChainMatcherNode | undefined {
  a.string('name');
  const tc = a.get('typed_config');
  a.finish();
  if (tc === undefined) {
    a.diag.error(a.child('typed_config'), 'is required');
    return undefined;
  }
  const any = decodeAny(tc, a.diag, a.child('typed_config'));
  if (!any) return undefined;
  if (any.typeUrl !== STRING_VALUE_TYPE) {
    a.diag.error(`${a.child('typed_config')}.@type`, `expected google.protobuf.StringValue naming a filter chain, got ${any.typeUrl}`);
    return undefined;
  }
  const v = any.config['value'];
  if (typeof v !== 'string' || v === '') {
    a.diag.error(`${a.child('typed_config')}.value`, 'must name a filter chain');
    return undefined;
  }
  if (!chains.has(v)) {
    a.diag.error(`${a.child('typed_config')}.value`, `names no filter chain of this listener: "${v}"`);
    return undefined;
  }
  return { kind: 'chain', name: v };
}
