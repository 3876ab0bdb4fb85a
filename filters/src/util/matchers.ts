import { compileFullMatch, type Diagnostics } from '../../../config/src/index.js';
import { bool, isObj, raw, str, type Obj } from './fields.js';

/** A compiled envoy.type.matcher.v3.StringMatcher. */
export type StringTest = (s: string) => boolean;

/** RE2 (linear time) for safe_regex; Envoy matches the whole string. RE2 loads on first use (config/). */
export function compileRegex(pattern: string, diag: Diagnostics, path: string): StringTest | undefined {
  const re = compileFullMatch(pattern);
  if (typeof re === 'string') {
    diag.error(path, `invalid RE2 regex: ${re}`);
    return undefined;
  }
  return (s) => re.test(s);
}

export function compileStringMatcher(v: unknown, diag: Diagnostics, path: string): StringTest | undefined {
  if (!isObj(v)) {
    diag.error(path, 'must be a StringMatcher');
    return undefined;
  }
  const ic = bool(v, 'ignore_case', diag, path);
  const kinds = ['exact', 'prefix', 'suffix', 'contains', 'safe_regex'].filter((k) => raw(v, k) !== undefined);
  if (kinds.length !== 1) {
    diag.error(path, 'StringMatcher needs exactly one of exact, prefix, suffix, contains, safe_regex');
    return undefined;
  }
  const kind = kinds[0]!;
  if (kind === 'safe_regex') {
    const sr = raw(v, 'safe_regex');
    const re = isObj(sr) ? str(sr, 'regex', diag, `${path}.safe_regex`) : undefined;
    if (re === undefined) {
      diag.error(`${path}.safe_regex.regex`, 'is required');
      return undefined;
    }
    return compileRegex(re, diag, `${path}.safe_regex.regex`);
  }
  const want0 = str(v, kind, diag, path);
  if (want0 === undefined) return undefined;
  const want = ic ? want0.toLowerCase() : want0;
  const norm = ic ? (s: string) => s.toLowerCase() : (s: string) => s;
  switch (kind) {
    case 'exact': return (s) => norm(s) === want;
    case 'prefix': return (s) => norm(s).startsWith(want);
    case 'suffix': return (s) => norm(s).endsWith(want);
    default: return (s) => norm(s).includes(want);
  }
}

/**
 * A compiled envoy.config.route.v3.HeaderMatcher over a request. Pseudo-headers
 * (:method, :path, :authority, :scheme) read the request view.
 */
export type HeaderTest = (get: (name: string) => string | undefined) => boolean;

export function compileHeaderMatcher(v: unknown, diag: Diagnostics, path: string): HeaderTest | undefined {
  if (!isObj(v)) {
    diag.error(path, 'must be a HeaderMatcher');
    return undefined;
  }
  const name = str(v, 'name', diag, path)?.toLowerCase();
  if (!name) {
    diag.error(`${path}.name`, 'is required');
    return undefined;
  }
  const invert = bool(v, 'invert_match', diag, path);
  const missingAsEmpty = bool(v, 'treat_missing_header_as_empty', diag, path);
  let test: ((value: string | undefined) => boolean) | undefined;
  const sm = raw(v, 'string_match');
  const present = raw(v, 'present_match');
  const exact = raw(v, 'exact_match');
  const prefix = raw(v, 'prefix_match');
  const suffix = raw(v, 'suffix_match');
  const contains = raw(v, 'contains_match');
  const sre = raw(v, 'safe_regex_match');
  const range = raw(v, 'range_match');
  const wrap = (t: StringTest | undefined) => t && ((x: string | undefined) => x !== undefined && t(x));
  if (sm !== undefined) test = wrap(compileStringMatcher(sm, diag, `${path}.string_match`));
  else if (exact !== undefined) test = wrap(compileStringMatcher({ exact }, diag, `${path}.exact_match`));
  else if (prefix !== undefined) test = wrap(compileStringMatcher({ prefix }, diag, `${path}.prefix_match`));
  else if (suffix !== undefined) test = wrap(compileStringMatcher({ suffix }, diag, `${path}.suffix_match`));
  else if (contains !== undefined) test = wrap(compileStringMatcher({ contains }, diag, `${path}.contains_match`));
  else if (sre !== undefined) test = wrap(compileStringMatcher({ safe_regex: sre }, diag, `${path}.safe_regex_match`));
  else if (range !== undefined && isObj(range)) {
    const lo = Number(raw(range, 'start'));
    const hi = Number(raw(range, 'end'));
    test = (x) => {
      if (x === undefined || !/^-?\d+$/.test(x)) return false;
      const n = Number(x);
      return n >= lo && n < hi;
    };
  } else if (present !== undefined) {
    const want = present === true;
    test = (x) => (x !== undefined) === want;
  } else {
    test = (x) => x !== undefined; // no match specifier: presence
  }
  if (test === undefined) return undefined;
  const t = test;
  return (get) => {
    let value = get(name);
    if (value === undefined && missingAsEmpty) value = '';
    return t(value) !== invert;
  };
}
