import type { HeaderMatcher, QueryParameterMatcher, StringMatcher } from './model.js';
import { compileFullMatch, type Re2 } from './regex.js';

/**
 * Envoy's string, header and query-parameter matchers compiled from the config model:
 * one place for their semantics, used by the router (proxy/), access-log and
 * local-reply filters (telemetry/) alike.
 */

/** A compiled string matcher: a closure chosen once per config, never re-parsed per request. */
export type StringTest = (value: string) => boolean;

export function compileStringMatcher(m: StringMatcher): StringTest {
  if (m.kind === 'safe_regex') {
    const re = compileFullMatch(m.regex) as Re2; // validated when the config was decoded
    return (v) => re.test(v);
  }
  const want = m.ignoreCase ? m.value.toLowerCase() : m.value;
  const norm = m.ignoreCase ? (v: string) => v.toLowerCase() : (v: string) => v;
  switch (m.kind) {
    case 'exact':
      return (v) => norm(v) === want;
    case 'prefix':
      return (v) => norm(v).startsWith(want);
    case 'suffix':
      return (v) => norm(v).endsWith(want);
    case 'contains':
      return (v) => norm(v).includes(want);
  }
}

export type HeaderLookup = (name: string) => string | undefined;

/** Envoy semantics: multiple values of a header are matched as one comma-joined value. */
export function compileHeaderMatcher(h: HeaderMatcher): (lookup: HeaderLookup) => boolean {
  const name = h.name;
  let test: (v: string | undefined) => boolean;
  const m = h.match;
  if (m.kind === 'present') {
    test = (v) => (v !== undefined) === m.present;
  } else if (m.kind === 'range') {
    test = (v) => {
      if (v === undefined || !/^-?\d+$/.test(v)) return false;
      const n = Number(v);
      return n >= m.start && n < m.end;
    };
  } else {
    const s = compileStringMatcher(m.matcher);
    test = (v) => v !== undefined && s(v);
  }
  const missingAsEmpty = h.treatMissingAsEmpty;
  const invert = h.invert;
  return (lookup) => {
    let v = lookup(name);
    if (v === undefined && missingAsEmpty) v = '';
    const r = test(v);
    // An absent header never matches an inverted value matcher (Envoy: invert applies to present headers).
    if (invert) return m.kind !== 'present' && v === undefined ? false : !r;
    return r;
  };
}

export function compileQueryMatcher(q: QueryParameterMatcher): (params: URLSearchParams) => boolean {
  if (q.matcher) {
    const s = compileStringMatcher(q.matcher);
    return (p) => {
      const v = p.get(q.name);
      return v !== null && s(v);
    };
  }
  const want = q.presentMatch ?? true;
  return (p) => p.has(q.name) === want;
}
