import { ObjectReader } from '../../../config/src/index.js';
import { FILTER_DISABLED, type HttpFilter, type LocalReply, type RequestHeadersView, type StreamInfo } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import { countersFor, type FilterCounters } from '../stats.js';
import { compileCidr } from '../util/cidr.js';
import { headerValue } from '../util/fields.js';
import { compileHeaderMatcher, compileStringMatcher } from '../util/matchers.js';

/**
 * envoy.extensions.filters.http.rbac.v3.RBAC. Policies are compiled once into predicate
 * closures; a request evaluates them in policy-name order (Envoy keeps policies in a
 * sorted map, which fixes which name appears in the DENY details).
 */
export const RBAC_TYPE_URL = 'envoy.extensions.filters.http.rbac.v3.RBAC';
export const RBAC_PER_ROUTE_TYPE_URL = 'envoy.extensions.filters.http.rbac.v3.RBACPerRoute';

interface Req {
  readonly req: RequestHeadersView;
  readonly info: StreamInfo;
}
type Pred = (r: Req) => boolean;

function header(r: Req, name: string): string | undefined {
  switch (name) {
    case ':method': return r.req.method;
    case ':path': return r.req.path;
    case ':authority': return r.req.authority;
    case ':scheme': return r.req.scheme;
    default: return headerValue(r.req.headers[name]);
  }
}

function pathOnly(p: string): string {
  const q = p.indexOf('?');
  return q < 0 ? p : p.slice(0, q);
}

/** The original client: the proxy sets metadata "remote_ip" from XFF when it trusts it. */
function remoteIp(info: StreamInfo): string {
  const m = info.metadata.get('remote_ip');
  return typeof m === 'string' ? m : info.downstreamAddress;
}

const TRUE: Pred = () => true;

type Compile = (r: ObjectReader) => Pred | undefined;

/** The rules of a composite (`and_rules: {rules: [...]}`), each compiled by `self`. */
function listOf(r: ObjectReader, field: string, inner: string, self: Compile): Pred[] {
  const o = r.object(field);
  if (!o) return [];
  const preds = o.objects(inner).map(self).filter((p): p is Pred => p !== undefined);
  o.finish();
  return preds;
}

/** Shared by permissions and principals: composite rules, header, url_path, any. `done` = not a shared kind. */
function compileCommon(r: ObjectReader, kind: string, self: Compile): Pred | undefined | 'other' {
  switch (kind) {
    case 'any':
      return r.bool('any', false) ? TRUE : () => false;
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
      return t && ((q) => t((n) => header(q, n)));
    }
    case 'url_path': {
      // envoy.type.matcher.v3.PathMatcher {path: StringMatcher}
      const pm = r.object('url_path');
      const t = pm && compileStringMatcher(pm.get('path'), r.diag, pm.child('path'));
      pm?.finish();
      return t && ((q) => t(pathOnly(q.req.path)));
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
      return (q) => q.info.downstreamLocalPort === port;
    }
    case 'destination_port_range': {
      // envoy.type.v3.Int32Range: [start, end)
      const range = r.object('destination_port_range');
      const lo = range?.int('start', 0, 0, 65536) ?? 0;
      const hi = range?.int('end', 0, 0, 65536) ?? 0;
      range?.finish();
      return (q) => q.info.downstreamLocalPort >= lo && q.info.downstreamLocalPort < hi;
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
      if (!has) return (q) => q.info.peerIdentity !== undefined; // any authenticated peer
      return t && ((q) => q.info.peerIdentity !== undefined && t(q.info.peerIdentity));
    }
    case 'source_ip':
    case 'direct_remote_ip': {
      const t = compileCidr(r.get(kind), r.diag, r.child(kind));
      return t && ((q) => t(q.info.downstreamAddress));
    }
    case 'remote_ip': {
      const t = compileCidr(r.get(kind), r.diag, r.child(kind));
      return t && ((q) => t(remoteIp(q.info)));
    }
    default:
      r.accept(kind);
      r.diag.error(r.child(kind), 'not supported by pilotfish');
      return undefined;
  }
}

interface Policy {
  readonly name: string;
  readonly permission: Pred;
  readonly principal: Pred;
}

type Action = 'ALLOW' | 'DENY' | 'LOG';

export interface RbacEngine {
  readonly action: Action;
  readonly policies: readonly Policy[];
}

/** The first matching policy's name, or undefined. */
function firstMatch(e: RbacEngine, r: Req): string | undefined {
  for (const p of e.policies) if (p.permission(r) && p.principal(r)) return p.name;
  return undefined;
}

/** Allowed? plus the policy that decided (for details / shadow metadata). */
function evaluate(e: RbacEngine, r: Req): { allowed: boolean; policy: string | undefined } {
  const m = firstMatch(e, r);
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

function compileRbac(r: ObjectReader): RbacEngine | undefined {
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

interface RbacConfig {
  readonly rules: RbacEngine | undefined;
  readonly shadow: RbacEngine | undefined;
  readonly rulesStatPrefix: string;
  readonly shadowStatPrefix: string;
}

function decodeRbacConfig(r: ObjectReader): RbacConfig {
  if (r.has('matcher') || r.has('shadow_matcher')) {
    r.accept('matcher', 'shadow_matcher');
    r.diag.error(r.child('matcher'), 'the matcher API is not supported by pilotfish; use rules');
  }
  const rules = r.object('rules');
  const shadow = r.object('shadow_rules');
  const cfg: RbacConfig = {
    rules: rules && compileRbac(rules),
    shadow: shadow && compileRbac(shadow),
    rulesStatPrefix: r.string('rules_stat_prefix', ''),
    shadowStatPrefix: r.string('shadow_rules_stat_prefix', ''),
  };
  r.finish();
  return cfg;
}

const DENIED_BODY = 'RBAC: access denied';

function run(cfg: RbacConfig, c: FilterCounters, req: RequestHeadersView, info: StreamInfo, filterName: string): LocalReply | undefined {
  const r: Req = { req, info };
  if (cfg.shadow !== undefined) {
    const s = evaluate(cfg.shadow, r);
    c.inc(`${cfg.shadowStatPrefix}shadow_${s.allowed ? 'allowed' : 'denied'}`);
    // Envoy's dynamic metadata keys, for access logs.
    info.metadata.set(filterName, {
      shadow_effective_policy_id: s.policy ?? '',
      shadow_engine_result: s.allowed ? 'allowed' : 'denied',
    });
  }
  if (cfg.rules === undefined) return undefined;
  const e = evaluate(cfg.rules, r);
  if (cfg.rules.action === 'LOG') {
    c.inc(`${cfg.rulesStatPrefix}${e.policy === undefined ? 'logged_not' : 'logged'}`);
    return undefined;
  }
  if (e.allowed) {
    c.inc(`${cfg.rulesStatPrefix}allowed`);
    return undefined;
  }
  c.inc(`${cfg.rulesStatPrefix}denied`);
  return {
    status: 403,
    headers: { 'content-type': 'text/plain' },
    body: DENIED_BODY,
    details: `rbac_access_denied_matched_policy[${e.policy ?? 'none'}]`,
  };
}

registerHttpFilter({
  kind: 'rbac',
  typeUrl: RBAC_TYPE_URL,
  perRouteTypeUrls: [RBAC_PER_ROUTE_TYPE_URL],
  create(cfgIn, diag, path): HttpFilter {
    const cfg = decodeRbacConfig(ObjectReader.of(cfgIn.config, path, diag)!); // the chain builder hands over an object
    const c = countersFor(cfgIn.name);
    const name = cfgIn.name;
    return {
      name,
      typeUrl: RBAC_TYPE_URL,
      failurePolicy: 'FAIL_CLOSED',
      failureStatus: 403,
      decodeHeaders(req, info, pr) {
        return run(pr === undefined ? cfg : (pr as RbacConfig), c, req, info, name);
      },
      describe: () => ({
        kind: 'rbac',
        action: cfg.rules?.action,
        policies: cfg.rules?.policies.map((p) => p.name) ?? [],
        shadow_policies: cfg.shadow?.policies.map((p) => p.name) ?? [],
      }),
    };
  },
  decodePerRoute(_t, config, diag, path): unknown {
    // RBACPerRoute{rbac}: replaces the filter's rules for the route; no rbac = disabled.
    const r = ObjectReader.of(config, path, diag)!;
    const inner = r.object('rbac');
    r.finish();
    if (inner === undefined) return FILTER_DISABLED;
    return decodeRbacConfig(inner);
  },
});
