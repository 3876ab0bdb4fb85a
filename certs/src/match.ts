/**
 * SAN parsing and StringMatcher evaluation. Regexes use RE2 (re2-wasm) like Envoy's
 * safe_regex, so a hostile SAN can never make verification super-linear.
 */
import { createRequire } from 'node:module';
import type { X509Certificate } from 'node:crypto';
import type { SanMatcher, StringMatcher } from './types.js';

const require = createRequire(import.meta.url);

interface Re2 { test(s: string): boolean }
let RE2: (new (pattern: string, flags?: string) => Re2) | undefined;

/** Full-match RE2 (Envoy semantics); returns the error text instead of throwing. */
export function compileRegex(pattern: string): Re2 | string {
  try {
    RE2 ??= (require('re2-wasm') as { RE2: new (p: string, f?: string) => Re2 }).RE2;
    return new RE2(`^(?:${pattern})$`, 'u');
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

export type CompiledStringMatcher = (s: string) => boolean;

export function compileStringMatcher(m: StringMatcher): CompiledStringMatcher {
  if (m.kind === 'safe_regex') {
    const re = compileRegex(m.regex);
    // The decoder has already rejected bad patterns; a failure here matches nothing.
    return typeof re === 'string' ? () => false : (s) => re.test(s);
  }
  const want = m.ignoreCase ? m.value.toLowerCase() : m.value;
  const norm = m.ignoreCase ? (s: string) => s.toLowerCase() : (s: string) => s;
  switch (m.kind) {
    case 'exact': return (s) => norm(s) === want;
    case 'prefix': return (s) => norm(s).startsWith(want);
    case 'suffix': return (s) => norm(s).endsWith(want);
    default: return (s) => norm(s).includes(want);
  }
}

export interface Sans {
  readonly uri: readonly string[];
  readonly dns: readonly string[];
  readonly email: readonly string[];
  readonly ip: readonly string[];
}

const EMPTY_SANS: Sans = { uri: [], dns: [], email: [], ip: [] };

/**
 * Parses X509Certificate.subjectAltName ("DNS:a, URI:spiffe://x, IP Address:1.2.3.4").
 * Node quotes values containing separators as JSON strings, so those are decoded too.
 */
export function parseSans(text: string | undefined): Sans {
  if (!text) return EMPTY_SANS;
  const uri: string[] = [], dns: string[] = [], email: string[] = [], ip: string[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon).trim();
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      try { value = JSON.parse(text.slice(colon + 1, j + 1)) as string; } catch { value = text.slice(colon + 2, j); }
      next = text.indexOf(', ', j);
    } else {
      next = text.indexOf(', ', colon);
      value = text.slice(colon + 1, next < 0 ? text.length : next);
    }
    switch (type) {
      case 'URI': uri.push(value); break;
      case 'DNS': dns.push(value); break;
      case 'email': email.push(value); break;
      case 'IP Address': ip.push(value); break;
      default: break;
    }
    if (next < 0) break;
    i = next + 2;
  }
  return { uri, dns, email, ip };
}

export function sansOf(cert: X509Certificate): Sans {
  return parseSans(cert.subjectAltName);
}

const SPIFFE_RE = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[A-Za-z0-9._-]+)*)$/;

/** Splits a SPIFFE ID per the SPIFFE-ID spec; undefined if it is not a valid one. */
export function parseSpiffeId(id: string): { trustDomain: string; path: string } | undefined {
  const m = SPIFFE_RE.exec(id);
  if (!m || m[1]!.length > 255) return undefined;
  const path = m[2] ?? '';
  if (path.split('/').some((seg) => seg === '.' || seg === '..')) return undefined;
  return { trustDomain: m[1]!, path };
}

export interface CompiledSanMatcher {
  readonly sanType: SanMatcher['sanType'];
  readonly match: CompiledStringMatcher;
}

export function compileSanMatchers(ms: readonly SanMatcher[]): CompiledSanMatcher[] {
  return ms.map((m) => ({ sanType: m.sanType, match: compileStringMatcher(m.matcher) }));
}

/** Envoy semantics: with matchers, at least one matcher must match at least one SAN of its type. */
export function sansMatch(sans: Sans, ms: readonly CompiledSanMatcher[]): boolean {
  if (ms.length === 0) return true;
  for (const m of ms) {
    const lists = m.sanType === 'URI' ? [sans.uri] : m.sanType === 'DNS' ? [sans.dns] : m.sanType === 'EMAIL' ? [sans.email]
      : m.sanType === 'IP_ADDRESS' ? [sans.ip] : [sans.uri, sans.dns, sans.email, sans.ip];
    for (const l of lists) for (const v of l) if (m.match(v)) return true;
  }
  return false;
}
