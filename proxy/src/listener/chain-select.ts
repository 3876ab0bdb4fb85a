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
  readonly serverNames: readonly string[];
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

/**
 * Builds the filter chain selector for a listener, following Envoy's documented order
 * (listener_components.proto, FilterChainMatch): destination port, destination IP,
 * server name, transport protocol, application protocols, direct source IP, source
 * type, source IP, source port. At each criterion only the chains with the most
 * specific match survive (an exact value beats a wildcard or range, a longer prefix or
 * suffix beats a shorter one, and an empty criterion matches anything but ranks
 * lowest); when none survives, the default filter chain takes the connection, or the
 * connection is closed. `filter_chain_matcher`, when set, replaces all of this.
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
  const ranks = new Int32Array(chains.length);
  const alive = new Uint8Array(chains.length);
  return (input) => {
    alive.fill(1);
    const dst = parseIp(input.destinationAddress);
    const src = parseIp(input.sourceAddress);
    const direct = input.directSourceAddress === input.sourceAddress ? src : parseIp(input.directSourceAddress);
    const steps: ((m: CompiledMatch) => number)[] = [
      (m) => (m.destinationPort === undefined ? ANY : m.destinationPort === input.destinationPort ? 1 : NO_MATCH),
      (m) => rankRanges(m.prefixRanges, dst),
      (m) => rankServerName(m.serverNames, input.serverName),
      (m) => (m.transportProtocol === '' ? ANY : m.transportProtocol === input.transportProtocol ? 1 : NO_MATCH),
      (m) => (m.applicationProtocols.length === 0 ? ANY : m.applicationProtocols.some((p) => input.applicationProtocols.includes(p)) ? 1 : NO_MATCH),
      (m) => rankRanges(m.directSourceRanges, direct),
      (m) => rankSourceType(m.sourceType, src, dst),
      (m) => rankRanges(m.sourceRanges, src),
      (m) => (m.sourcePorts.length === 0 ? ANY : m.sourcePorts.includes(input.sourcePort) ? 1 : NO_MATCH),
    ];
    for (const step of steps) {
      let best = NO_MATCH;
      for (let i = 0; i < compiled.length; i++) {
        if (alive[i] === 0) continue;
        const r = step(compiled[i]!);
        ranks[i] = r;
        if (r > best) best = r;
      }
      if (best === NO_MATCH) return fallback;
      for (let i = 0; i < compiled.length; i++) if (alive[i] === 1 && ranks[i] !== best) alive[i] = 0;
    }
    // Envoy refuses listeners whose chains have identical matches, so one survives; take the first.
    const winner = alive.indexOf(1);
    return winner < 0 ? fallback : winner;
  };
}

function isCatchAll(c: FilterChain): boolean {
  const m = c.match;
  return !m || (m.destinationPort === undefined && m.prefixRanges.length === 0 && m.serverNames.length === 0 &&
    !m.transportProtocol && m.applicationProtocols.length === 0 && m.directSourcePrefixRanges.length === 0 &&
    m.sourceType === 'ANY' && m.sourcePrefixRanges.length === 0 && m.sourcePorts.length === 0);
}

function compileMatch(m: FilterChainMatch | undefined): CompiledMatch {
  const ranges = (rs: FilterChainMatch['prefixRanges'] | undefined) => (rs ?? []).map(compileCidr).filter((c): c is CompiledCidr => c !== undefined);
  return {
    destinationPort: m?.destinationPort,
    prefixRanges: ranges(m?.prefixRanges),
    serverNames: (m?.serverNames ?? []).map((s) => s.toLowerCase()),
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
