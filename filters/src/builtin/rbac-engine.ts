import { ObjectReader, type Diagnostics } from '../../../config/src/index.js';
import { compileCidr } from '../util/cidr.js';
import { compileHeaderMatcher, compileStringMatcher, type StringTest } from '../util/matchers.js';

/**
 * Envoy's RBAC engine (envoy.config.rbac.v3.RBAC), shared by the HTTP RBAC filter and the
 * network RBAC filter (proxy/): policies compiled once into predicates over an RbacSubject,
 * evaluated in policy-name order (Envoy keeps policies in a sorted map, which fixes which
 * name a DENY reports).
 */

/**
 * What a policy is evaluated against: a request (HTTP RBAC) or a connection (network
 * RBAC, where headers and path are absent: rules on them do not match, as in Envoy).
 */
export interface RbacSubject {
  /** A request header (pseudo-headers included), undefined when absent or on a connection. */
  header(name: string): string | undefined;
  /** The request path without its query; undefined on a connection. */
  readonly path: string | undefined;
  /** The peer of the downstream connection (direct_remote_ip, source_ip). */
  readonly directRemoteIp: string;
  /** The original client (remote_ip): from x-forwarded-for when trusted, else the peer. */
  readonly remoteIp: string;
  /** The connection's local address after original_dst restoration (destination_ip). */
  readonly destinationIp: string;
  readonly destinationPort: number;
  /** SNI of the connection ("" when none). */
  readonly requestedServerName: string;
  /** The verified peer certificate's URI SAN (SPIFFE ID); undefined without mTLS. */
  readonly principal: string | undefined;
  /** Dynamic metadata of one filter namespace (an object), undefined when none. */
  metadata(filter: string): unknown;
  /** A connection (or request) filter state object by key, undefined when none. */
  filterState(key: string): unknown;
}

type Pred = (s: RbacSubject) => boolean;
type Compile = (r: ObjectReader) => Pred | undefined;

const TRUE: Pred = () => true;
const FALSE: Pred = () => false;

/** The rules of a composite (`and_rules: {rules: [...]}`), each compiled by `self`. */
function listOf(r: ObjectReader, field: string, inner: string, self: Compile): Pred[] {
  const o = r.object(field);
  if (!o) return [];
  const preds = o.objects(inner).map(self).filter((p): p is Pred => p !== undefined);
  o.finish();
  return preds;
}

/** Shared by permissions and principals. 'other' = not a shared kind. */
function compileCommon(r: ObjectReader, kind: string, self: Compile): Pred | undefined | 'other' {
  switch (kind) {
    case 'any':
      return r.bool('any', false) ? TRUE : FALSE;
    case 'and_rules':
    case 'and_ids': {
      const ps = listOf(r, kind, kind === 'and_rules' ? 'rules' : 'ids', self);
      return (q) => ps.every((p) => p(q));
    }
    case 'or_rules':
    case 'or_ids': {
      const ps = listOf(r, kind, kind === 'or_rules' ? 'rules' : 'ids', self);
      return (q) => ps.some((p) => p(q));
    }
    case 'not_rule':
    case 'not_id': {
      const o = r.object(kind);
      const p = o && self(o);
      return p && ((q) => !p(q));
    }
    case 'header': {
      const t = compileHeaderMatcher(r.get('header'), r.diag, r.child('header'));
      return t && ((q) => t((n) => q.header(n)));
    }
    case 'url_path': {
      // envoy.type.matcher.v3.PathMatcher {path: StringMatcher}; a connection has no path.
      const pm = r.object('url_path');
      const t = pm && compileStringMatcher(pm.get('path'), r.diag, pm.child('path'));
      pm?.finish();
      return t && ((q) => q.path !== undefined && t(q.path));
    }
    case 'metadata': {
      const o = r.object('metadata');
      return o && compileMetadataMatcher(o);
    }
    default:
      return 'other';
  }
}

const PERMISSION_KINDS = ['and_rules', 'or_rules', 'any', 'header', 'url_path', 'destination_ip', 'destination_port',
  'not_rule', 'metadata', 'requested_server_name', 'destination_port_range', 'matcher', 'uri_template'];
const PRINCIPAL_KINDS = ['and_ids', 'or_ids', 'any', 'authenticated', 'source_ip', 'direct_remote_ip', 'remote_ip',
  'header', 'url_path', 'metadata', 'not_id', 'filter_state', 'custom'];

/** The one rule a Permission or Principal holds (a oneof); undefined (reported) when not exactly one. */
function oneKind(r: ObjectReader, kinds: readonly string[], what: string): string | undefined {
  const set = kinds.filter((k) => r.has(k));
  if (set.length !== 1) {
    r.accept(...set);
    r.diag.error(r.path, `${what} needs exactly one rule, found ${set.length === 0 ? 'none' : set.join(', ')}`);
    return undefined;
  }
  return set[0];
}

function compilePermission(r: ObjectReader): Pred | undefined {
  const kind = oneKind(r, PERMISSION_KINDS, 'Permission');
  const out = kind === undefined ? undefined : compilePermissionKind(r, kind);
  r.finish();
  return out;
}

function compilePermissionKind(r: ObjectReader, kind: string): Pred | undefined {
  const common = compileCommon(r, kind, compilePermission);
  if (common !== 'other') return common;
  switch (kind) {
    case 'destination_port': {
      const port = r.int('destination_port', 0, 0, 65535);
      return (q) => q.destinationPort === port;
    }
    case 'destination_port_range': {
      // envoy.type.v3.Int32Range: [start, end)
      const range = r.object('destination_port_range');
      const lo = range?.int('start', 0, 0, 65536) ?? 0;
      const hi = range?.int('end', 0, 0, 65536) ?? 0;
      range?.finish();
      return (q) => q.destinationPort >= lo && q.destinationPort < hi;
    }
    case 'destination_ip': {
      const t = compileCidr(r.get(kind), r.diag, r.child(kind));
      return t && ((q) => t(q.destinationIp));
    }
    case 'requested_server_name': {
      const t = compileStringMatcher(r.get(kind), r.diag, r.child(kind));
      return t && ((q) => t(q.requestedServerName));
    }
    default:
      r.accept(kind);
      r.diag.error(r.child(kind), 'not supported by pilotfish');
      return undefined;
  }
}

function compilePrincipal(r: ObjectReader): Pred | undefined {
  const kind = oneKind(r, PRINCIPAL_KINDS, 'Principal');
  const out = kind === undefined ? undefined : compilePrincipalKind(r, kind);
  r.finish();
  return out;
}

function compilePrincipalKind(r: ObjectReader, kind: string): Pred | undefined {
  const common = compileCommon(r, kind, compilePrincipal);
  if (common !== 'other') return common;
  switch (kind) {
    case 'authenticated': {
      const a = r.object('authenticated');
      const has = a?.has('principal_name') ?? false;
      const t = has ? compileStringMatcher(a!.get('principal_name'), r.diag, a!.child('principal_name')) : undefined;
      a?.finish();
      if (!has) return (q) => q.principal !== undefined; // any authenticated peer
      return t && ((q) => q.principal !== undefined && t(q.principal));
    }
    case 'source_ip':
    case 'direct_remote_ip': {
      const t = compileCidr(r.get(kind), r.diag, r.child(kind));
      return t && ((q) => t(q.directRemoteIp));
    }
    case 'remote_ip': {
      const t = compileCidr(r.get(kind), r.diag, r.child(kind));
      return t && ((q) => t(q.remoteIp));
    }
    case 'filter_state': {
      const o = r.object('filter_state');
      return o && compileFilterStateMatcher(o);
    }
    default:
      r.accept(kind);
      r.diag.error(r.child(kind), 'not supported by pilotfish');
      return undefined;
  }
}

/** A filter-state or metadata value as the string Envoy's serializeAsString() would give. */
function asString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v !== null && typeof v === 'object') {
    const s = (v as { serializeAsString?: () => unknown }).serializeAsString?.();
    if (typeof s === 'string') return s;
  }
  return undefined;
}

/** envoy.type.matcher.v3.FilterStateMatcher {key, string_match | address_match}. */
function compileFilterStateMatcher(r: ObjectReader): Pred | undefined {
  const key = r.requiredString('key');
  let test: ((v: unknown) => boolean) | undefined;
  if (r.has('string_match')) {
    const t = compileStringMatcher(r.get('string_match'), r.diag, r.child('string_match'));
    test = t && ((v) => {
      const s = asString(v);
      return s !== undefined && t(s);
    });
  } else if (r.has('address_match')) {
    // AddressMatcher {ranges: [CidrRange], invert_match}
    const a = r.object('address_match');
    const raw = a?.get('ranges');
    const ranges = (Array.isArray(raw) ? raw : []).map((c, i) => compileCidr(c, r.diag, `${a!.child('ranges')}[${i}]`))
      .filter((t): t is NonNullable<typeof t> => t !== undefined);
    const invert = a?.bool('invert_match', false) ?? false;
    a?.finish();
    test = (v) => {
      const s = asString(v);
      if (s === undefined) return false;
      return ranges.some((t) => t(s)) !== invert;
    };
  } else {
    r.diag.error(r.path, 'FilterStateMatcher needs string_match or address_match');
  }
  r.finish();
  if (key === undefined || !test) return undefined;
  return (q) => {
    const v = q.filterState(key);
    return v !== undefined && test(v);
  };
}

/** envoy.type.matcher.v3.MetadataMatcher {filter, path: [{key}], value: ValueMatcher, invert}. */
function compileMetadataMatcher(r: ObjectReader): Pred | undefined {
  const filter = r.requiredString('filter');
  const path = r.objects('path').map((s) => {
    const k = s.requiredString('key');
    s.finish();
    return k ?? '';
  });
  const vr = r.object('value');
  if (!vr) r.diag.error(r.child('value'), 'is required');
  const value = vr && compileValueMatcher(vr);
  const invert = r.bool('invert', false);
  r.finish();
  if (filter === undefined || !value) return undefined;
  return (q) => {
    let v: unknown = q.metadata(filter);
    for (const k of path) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) {
        v = undefined;
        break;
      }
      v = (v as Record<string, unknown>)[k];
    }
    return value(v) !== invert;
  };
}

const VALUE_KINDS = ['null_match', 'double_match', 'string_match', 'bool_match', 'present_match', 'list_match', 'or_match'];

/** envoy.type.matcher.v3.ValueMatcher over a JSON-like value (undefined = absent). */
function compileValueMatcher(r: ObjectReader): ((v: unknown) => boolean) | undefined {
  const kind = oneKind(r, VALUE_KINDS, 'ValueMatcher');
  let out: ((v: unknown) => boolean) | undefined;
  switch (kind) {
    case 'null_match':
      r.accept('null_match');
      out = (v) => v === null;
      break;
    case 'present_match': {
      const want = r.bool('present_match', false);
      out = (v) => (v !== undefined) === want;
      break;
    }
    case 'bool_match': {
      const want = r.bool('bool_match', false);
      out = (v) => v === want;
      break;
    }
    case 'string_match': {
      const t: StringTest | undefined = compileStringMatcher(r.get('string_match'), r.diag, r.child('string_match'));
      out = t && ((v) => typeof v === 'string' && t(v));
      break;
    }
    case 'double_match': {
      // DoubleMatcher {range: {start, end} [start, end) | exact}
      const d = r.object('double_match');
      if (d?.has('exact')) {
        const x = d.get('exact');
        d.accept('exact');
        out = (v) => typeof v === 'number' && v === Number(x);
      } else if (d?.has('range')) {
        const rg = d.object('range');
        const lo = Number(rg?.get('start') ?? -Infinity);
        const hi = Number(rg?.get('end') ?? Infinity);
        rg?.accept('start', 'end');
        rg?.finish();
        out = (v) => typeof v === 'number' && v >= lo && v < hi;
      } else {
        r.diag.error(r.child('double_match'), 'needs exact or range');
      }
      d?.finish();
      break;
    }
    case 'list_match': {
      // ListMatcher {one_of: ValueMatcher}: some element of a list value matches.
      const l = r.object('list_match');
      const inner = l?.object('one_of');
      const m = inner && compileValueMatcher(inner);
      l?.finish();
      out = m && ((v) => Array.isArray(v) && v.some((e) => m(e)));
      break;
    }
    case 'or_match': {
      const o = r.object('or_match');
      const ms = (o?.objects('value_matchers') ?? []).map(compileValueMatcher).filter((m): m is (v: unknown) => boolean => m !== undefined);
      o?.finish();
      out = (v) => ms.some((m) => m(v));
      break;
    }
    default:
      break;
  }
  r.finish();
  return out;
}

interface Policy {
  readonly name: string;
  readonly permission: Pred;
  readonly principal: Pred;
}

export type RbacAction = 'ALLOW' | 'DENY' | 'LOG';

/** A compiled `rules` (or `shadow_rules`) block. */
export interface RbacEngine {
  readonly action: RbacAction;
  readonly policies: readonly Policy[];
}

/** Allowed? plus the first matching policy (for details and shadow metadata). */
export function evaluateRbac(e: RbacEngine, s: RbacSubject): { readonly allowed: boolean; readonly policy: string | undefined } {
  let m: string | undefined;
  for (const p of e.policies) {
    if (p.permission(s) && p.principal(s)) {
      m = p.name;
      break;
    }
  }
  switch (e.action) {
    case 'ALLOW': return { allowed: m !== undefined, policy: m };
    case 'DENY': return { allowed: m === undefined, policy: m };
    default: return { allowed: true, policy: m }; // LOG: never blocks
  }
}

const ACTIONS = ['ALLOW', 'DENY', 'LOG'] as const;

function compilePolicy(name: string, r: ObjectReader): Policy | undefined {
  if (r.has('condition') || r.has('checked_condition')) {
    r.accept('condition', 'checked_condition');
    r.diag.error(r.child('condition'), 'CEL conditions are not supported by pilotfish');
    r.accept('permissions', 'principals');
    return undefined;
  }
  const permsIn = r.objects('permissions');
  const princIn = r.objects('principals');
  const ps = permsIn.map(compilePermission).filter((x): x is Pred => x !== undefined);
  const qs = princIn.map(compilePrincipal).filter((x): x is Pred => x !== undefined);
  if (permsIn.length === 0) r.diag.error(r.child('permissions'), 'at least one permission is required');
  if (princIn.length === 0) r.diag.error(r.child('principals'), 'at least one principal is required');
  r.finish();
  return {
    name,
    // A policy matches if any permission and any principal match.
    permission: ps.length === 1 ? ps[0]! : (q) => ps.some((f) => f(q)),
    principal: qs.length === 1 ? qs[0]! : (q) => qs.some((f) => f(q)),
  };
}

/** Compiles an envoy.config.rbac.v3.RBAC block; problems go to r.diag (undefined when the action is invalid). */
export function compileRbac(r: ObjectReader): RbacEngine | undefined {
  const before = r.diag.errors.length;
  const action = r.enumOf('action', ACTIONS, 'ALLOW');
  const actionOk = r.diag.errors.length === before;
  // policies is a map keyed by policy name: its keys are names, not fields.
  const pol = r.object('policies');
  const policies: Policy[] = [];
  for (const name of Object.keys(pol?.raw ?? {}).sort()) {
    const p = ObjectReader.of(pol!.get(name), pol!.child(name), r.diag);
    const compiled = p && compilePolicy(name, p);
    if (compiled) policies.push(compiled);
  }
  r.finish();
  return actionOk ? { action, policies } : undefined;
}

/** A raw RBAC block (e.g. from a network filter's config) compiled against `diag`. */
export function compileRbacRules(raw: unknown, diag: Diagnostics, path: string): RbacEngine | undefined {
  const r = ObjectReader.of(raw, path, diag);
  return r && compileRbac(r);
}
