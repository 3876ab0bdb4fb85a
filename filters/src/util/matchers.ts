import {
  compileFullMatch, compileHeaderMatcher as compileHeader, compileStringMatcher as compileString, decodeHeaderMatcher,
  decodeStringMatcher, ObjectReader, type Diagnostics, type StringTest,
} from '../../../config/src/index.js';

/**
 * The built-in filters' matchers: config/'s decoders (path-prefixed problems, unknown fields
 * warned, snake/camel names) and config/'s compiled semantics, the same the router and
 * telemetry use. Only the shape differs: decode-and-compile in one call, undefined on error.
 */

export type { StringTest };

/** RE2 (linear time) for safe_regex; Envoy matches the whole string. RE2 loads on first use (config/). */
export function compileRegex(pattern: string, diag: Diagnostics, path: string): StringTest | undefined {
  const re = compileFullMatch(pattern);
  if (typeof re === 'string') {
    diag.error(path, `invalid RE2 regular expression: ${re}`);
    return undefined;
  }
  return (s) => re.test(s);
}

/** An envoy.type.matcher.v3.StringMatcher, decoded and compiled; undefined (with errors under `path`) if invalid. */
export function compileStringMatcher(v: unknown, diag: Diagnostics, path: string): StringTest | undefined {
  const before = diag.errors.length;
  const r = ObjectReader.of(v, path, diag);
  const m = r ? decodeStringMatcher(r) : undefined;
  return m && diag.errors.length === before ? compileString(m) : undefined;
}

/**
 * A compiled envoy.config.route.v3.HeaderMatcher over a request. Pseudo-headers
 * (:method, :path, :authority, :scheme) read the request view.
 */
export type HeaderTest = (get: (name: string) => string | undefined) => boolean;

export function compileHeaderMatcher(v: unknown, diag: Diagnostics, path: string): HeaderTest | undefined {
  const before = diag.errors.length;
  const r = ObjectReader.of(v, path, diag);
  const m = r ? decodeHeaderMatcher(r) : undefined;
  return m && diag.errors.length === before ? compileHeader(m) : undefined;
}
