import type { FilterChain, FilterChainMatch, FilterChainMatcherNode, Listener, NetworkMatchInput } from '../../../config/src/index.js';
import { cidrContains, compileCidr, isLoopback, parseIp, sameIp, type CompiledCidr, type ParsedIp } from './ip.js';

/** What is known of a connection when its filter chain is chosen. */
export interface ChainMatchInput {
  /** The (restored) destination: the original destination of an intercepted connection. */
  readonly destinationAddress: string;
  readonly destinationPort: number;
  /** The source as the proxy sees it (a PROXY protocol filter would change it; the direct source never changes). */
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly directSourceAddress: string;
  readonly serverName: string | undefined;
  /** "tls" / "raw_buffer", or "" when no listener filter detected it. */
  readonly transportProtocol: string;
  readonly applicationProtocols: readonly string[];
}

/** A chain's index in `listener.filterChains`, DEFAULT_CHAIN for default_filter_chain, or NO_CHAIN. */
export type ChainChoice = number;
export const DEFAULT_CHAIN = -1;
export const NO_CHAIN = -2;

export type ChainSelector = (input: ChainMatchInput) => ChainChoice;

interface CompiledMatch {
  readonly destinationPort: number | undefined;
  readonly prefixRanges: readonly CompiledCidr[];
  /** Exact names, and "*.x" wildcards as their suffix ".x". */
  readonly exactNames: ReadonlySet<string>;
  readonly wildcardSuffixes: readonly string[];
  readonly anyName: boolean;
  readonly transportProtocol: string;
  readonly applicationProtocols: readonly string[];
  readonly directSourceRanges: readonly CompiledCidr[];
  readonly sourceType: FilterChainMatch['sourceType'];
  readonly sourceRanges: readonly CompiledCidr[];
  readonly sourcePorts: readonly number[];
}

const NO_MATCH = -1;
const ANY = 0;
/** An exact server name outranks every wildcard (whose rank is its suffix length). */
const EXACT_NAME = 1 << 20;
const CRITERIA = 9;

/** The connection's addresses, parsed once per connection and only when some chain needs them. */
interface ParsedAddresses {
  dst: ParsedIp | undefined;
  src: ParsedIp | undefined;
  direct: ParsedIp | undefined;
}

/**
 * Builds the filter chain selector for a listener, following Envoy's documented order
 * (listener_components.proto, FilterChainMatch): destination port, destination IP,
 * server name, transport protocol, application protocols, direct source IP, source
 * type, source IP, source port. At each criterion only the chains with the most
 * specific match survive (an exact value beats a wildcard or range, a longer prefix or
 * suffix beats a shorter one, and an empty criterion matches anything but ranks
 * lowest); when none survives, the default filter chain takes the connection, or the
 * connection is closed. `filter_chain_matcher`, when set, replaces all of this.
 *
 * Per connection it allocates nothing but the parsed addresses (and only when a chain
 * has an address criterion): the candidate and rank arrays are the selector's own, and
 * criteria that no chain uses are skipped.
 */
export function compileChainSelector(listener: Listener): ChainSelector {
  const chains = listener.filterChains;
  const fallback = listener.defaultFilterChain ? DEFAULT_CHAIN : NO_CHAIN;
  if (listener.filterChainMatcher) {
    const byName = new Map<string, number>();
    chains.forEach((c, i) => byName.set(c.name, i));
    const root = listener.filterChainMatcher;
    return (input) => {
      const name = evaluateMatcher(root, input);
      if (name === undefined) return fallback;
      return byName.get(name) ?? (listener.defaultFilterChain?.name === name ? DEFAULT_CHAIN : fallback);
    };
  }
  // The common cases cost nothing per connection: one chain that matches everything.
  if (chains.length === 1 && isCatchAll(chains[0]!)) return () => 0;
  if (chains.length === 0) return () => fallback;
  const compiled = chains.map((c) => compileMatch(c.match));
  const needsDst = compiled.some((m) => m.prefixRanges.length > 0 || m.sourceType !== 'ANY');
  const needsSrc = compiled.some((m) => m.sourceRanges.length > 0 || m.sourceType !== 'ANY' || m.directSourceRanges.length > 0);
  // Criteria no chain uses rank every chain ANY: skip them outright.
  const steps = [...Array(CRITERIA).keys()].filter((step) => compiled.some((m) => !criterionEmpty(step, m)));
  const n = compiled.length;
  const candidates = new Int32Array(n);
  const ranks = new Int32Array(n);
  return (input) => {
    const ips: ParsedAddresses = {
      dst: needsDst ? parseIp(input.destinationAddress) : undefined,
      src: needsSrc ? parseIp(input.sourceAddress) : undefined,
      direct: undefined,
    };
    if (needsSrc) ips.direct = input.directSourceAddress === input.sourceAddress ? ips.src : parseIp(input.directSourceAddress);
    let count = n;
    for (let i = 0; i < n; i++) candidates[i] = i;
    for (const step of steps) {
      let best = NO_MATCH;
      for (let k = 0; k < count; k++) {
        const r = rank(step, compiled[candidates[k]!]!, input, ips);
        ranks[k] = r;
        if (r > best) best = r;
      }
      if (best === NO_MATCH) return fallback;
      // Keep only the most specific survivors, in configuration order.
      let kept = 0;
      for (let k = 0; k < count; k++) if (ranks[k] === best) candidates[kept++] = candidates[k]!;
      count = kept;
    }
    // Envoy refuses listeners whose chains have identical matches, so one survives; take the first.
    return candidates[0]!;
  };
}

function criterionEmpty(step: number, m: CompiledMatch): boolean {
  switch (step) {
    case 0: return m.destinationPort === undefined;
    case 1: return m.prefixRanges.length === 0;
    case 2: return m.anyName;
    case 3: return m.transportProtocol === '';
    case 4: return m.applicationProtocols.length === 0;
    case 5: return m.directSourceRanges.length === 0;
    case 6: return m.sourceType === 'ANY';
    case 7: return m.sourceRanges.length === 0;
    default: return m.sourcePorts.length === 0;
  }
}

/** One criterion of Envoy's order for one chain: NO_MATCH, ANY (no criterion) or a specificity. */
function rank(step: number, m: CompiledMatch, input: ChainMatchInput, ips: ParsedAddresses): number {
  switch (step) {
    case 0: return m.destinationPort === undefined ? ANY : m.destinationPort === input.destinationPort ? 1 : NO_MATCH;
    case 1: return rankRanges(m.prefixRanges, ips.dst);
    case 2: return rankCompiledName(m, input.serverName);
    case 3: return m.transportProtocol === '' ? ANY : m.transportProtocol === input.transportProtocol ? 1 : NO_MATCH;
    case 4: return rankAlpn(m.applicationProtocols, input.applicationProtocols);
    case 5: return rankRanges(m.directSourceRanges, ips.direct);
    case 6: return rankSourceType(m.sourceType, ips.src, ips.dst);
    case 7: return rankRanges(m.sourceRanges, ips.src);
    default: return m.sourcePorts.length === 0 ? ANY : m.sourcePorts.includes(input.sourcePort) ? 1 : NO_MATCH;
  }
}

function rankAlpn(want: readonly string[], offered: readonly string[]): number {
  if (want.length === 0) return ANY;
  for (let i = 0; i < offered.length; i++) if (want.includes(offered[i]!)) return 1;
  return NO_MATCH;
}

function rankCompiledName(m: CompiledMatch, sni: string | undefined): number {
  if (m.anyName) return ANY;
  if (sni === undefined || sni === '') return NO_MATCH;
  if (m.exactNames.has(sni)) return EXACT_NAME;
  let best = NO_MATCH;
  for (const suffix of m.wildcardSuffixes) if (suffix.length > best && sni.length > suffix.length && sni.endsWith(suffix)) best = suffix.length;
  return best;
}

function isCatchAll(c: FilterChain): boolean {
  const m = c.match;
  return !m || (m.destinationPort === undefined && m.prefixRanges.length === 0 && m.serverNames.length === 0 &&
    !m.transportProtocol && m.applicationProtocols.length === 0 && m.directSourcePrefixRanges.length === 0 &&
    m.sourceType === 'ANY' && m.sourcePrefixRanges.length === 0 && m.sourcePorts.length === 0);
}

function compileMatch(m: FilterChainMatch | undefined): CompiledMatch {
  const ranges = (rs: FilterChainMatch['prefixRanges'] | undefined) => (rs ?? []).map(compileCidr).filter((c): c is CompiledCidr => c !== undefined);
  const names = (m?.serverNames ?? []).map((s) => s.toLowerCase());
  return {
    destinationPort: m?.destinationPort,
    prefixRanges: ranges(m?.prefixRanges),
    exactNames: new Set(names.filter((n) => !n.startsWith('*.'))),
    wildcardSuffixes: names.filter((n) => n.startsWith('*.')).map((n) => n.slice(1)),
    anyName: names.length === 0,
    transportProtocol: m?.transportProtocol ?? '',
    applicationProtocols: m?.applicationProtocols ?? [],
    directSourceRanges: ranges(m?.directSourcePrefixRanges),
    sourceType: m?.sourceType ?? 'ANY',
    sourceRanges: ranges(m?.sourcePrefixRanges),
    sourcePorts: m?.sourcePorts ?? [],
  };
}

function rankRanges(ranges: readonly CompiledCidr[], ip: ParsedIp | undefined): number {
  if (ranges.length === 0) return ANY;
  if (!ip) return NO_MATCH;
  let best = NO_MATCH;
  // prefixLen + 1 so that 0.0.0.0/0 still outranks "no criterion".
  for (const r of ranges) if (r.prefixLen + 1 > best && cidrContains(r, ip)) best = r.prefixLen + 1;
  return best;
}

/** Exact names first, then the longest matching "*.suffix" wildcard, then chains without names. */
export function rankServerName(names: readonly string[], sni: string | undefined): number {
  if (names.length === 0) return ANY;
  if (sni === undefined || sni === '') return NO_MATCH;
  let best = NO_MATCH;
  for (const n of names) {
    if (n === sni) return EXACT_NAME;
    if (n.startsWith('*.')) {
      const suffix = n.slice(1); // ".example.com"
      if (sni.length > suffix.length && sni.endsWith(suffix) && suffix.length > best) best = suffix.length;
    }
  }
  return best;
}

function rankSourceType(t: FilterChainMatch['sourceType'], src: ParsedIp | undefined, dst: ParsedIp | undefined): number {
  if (t === 'ANY') return ANY;
  const local = src !== undefined && (isLoopback(src) || (dst !== undefined && sameIp(src, dst)));
  if (t === 'SAME_IP_OR_LOOPBACK') return local ? 1 : NO_MATCH;
  return local ? NO_MATCH : 1;
}

// ---------------------------------------------------------------- filter_chain_matcher

/** The value of one of Envoy's network matching inputs, or undefined when it has none. */
export function matchInputValue(input: NetworkMatchInput, c: ChainMatchInput): string | undefined {
  switch (input) {
    case 'destination_port': return String(c.destinationPort);
    case 'destination_ip': return c.destinationAddress;
    case 'source_ip': return c.sourceAddress;
    case 'source_port': return String(c.sourcePort);
    case 'direct_source_ip': return c.directSourceAddress;
    case 'source_type': {
      const src = parseIp(c.sourceAddress);
      const dst = parseIp(c.destinationAddress);
      return src && (isLoopback(src) || (dst && sameIp(src, dst))) ? 'local' : undefined;
    }
    case 'server_name': return c.serverName || undefined;
    case 'transport_protocol': return c.transportProtocol || undefined;
    // Envoy's ApplicationProtocolInput: the list as 'a','b'.
    case 'application_protocol': return c.applicationProtocols.length === 0 ? undefined : c.applicationProtocols.map((p) => `'${p}'`).join(',');
  }
}

const IP_INPUTS = new Set<NetworkMatchInput>(['destination_ip', 'source_ip', 'direct_source_ip']);

/** Walks a decoded filter_chain_matcher; returns the chosen filter chain's name. */
export function evaluateMatcher(node: FilterChainMatcherNode, c: ChainMatchInput): string | undefined {
  if (node.kind === 'chain') return node.name;
  const value = matchInputValue(node.input, c);
  let next: FilterChainMatcherNode | undefined;
  if (value !== undefined) {
    next = node.exact.get(value);
    if (!next && node.prefix.size > 0) next = IP_INPUTS.has(node.input) ? longestCidr(node.prefix, value) : longestPrefix(node.prefix, value);
  }
  next ??= node.onNoMatch;
  return next ? evaluateMatcher(next, c) : undefined;
}

function longestPrefix(map: ReadonlyMap<string, FilterChainMatcherNode>, value: string): FilterChainMatcherNode | undefined {
  let best: FilterChainMatcherNode | undefined;
  let bestLen = -1;
  for (const [k, v] of map) if (k.length > bestLen && value.startsWith(k)) [best, bestLen] = [v, k.length];
  return best;
}

function longestCidr(map: ReadonlyMap<string, FilterChainMatcherNode>, value: string): FilterChainMatcherNode | undefined {
  const ip = parseIp(value);
  if (!ip) return undefined;
  let best: FilterChainMatcherNode | undefined;
  let bestLen = -1;
  for (const [k, v] of map) {
    const [addressPrefix, len] = k.split('/');
    const c = compileCidr({ addressPrefix: addressPrefix ?? '', prefixLen: len === undefined ? (ip.v4 ? 32 : 128) : Number(len) });
    if (c && c.prefixLen > bestLen && cidrContains(c, ip)) [best, bestLen] = [v, c.prefixLen];
  }
  return best;
}
