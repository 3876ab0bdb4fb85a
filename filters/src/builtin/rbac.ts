import type { Diagnostics } from '../../../config/src/index.js';
import { FILTER_DISABLED, type HttpFilter, type LocalReply, type RequestHeadersView, type StreamInfo } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import { countersFor, type FilterCounters } from '../stats.js';
import { compileCidr } from '../util/cidr.js';
import { arr, headerValue, isObj, obj, raw, str, type Obj } from '../util/fields.js';
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

/** Shared by permissions and principals: composite rules, header, url_path, any. */
function compileCommon(
  v: Obj, kind: string, diag: Diagnostics, path: string,
  self: (v: unknown, diag: Diagnostics, path: string) => Pred | undefined,
): Pred | undefined {
  const listOf = (field: string, inner: string): Pred[] | undefined => {
    const o = obj(v, field, diag, path);
    if (!o) return undefined;
    const items = arr(o, inner, diag, `${path}.${field}`);
    const preds: Pred[] = [];
    items.forEach((x, i) => {
      const p = self(x, diag, `${path}.${field}.${inner}[${i}]`);
      if (p) preds.push(p);
    });
    return preds;
  };
  switch (kind) {
    case 'any':
      return raw(v, 'any') === true ? TRUE : () => false;
    case 'and_rules':
    case 'and_ids': {
      const ps = listOf(kind, kind === 'and_rules' ? 'rules' : 'ids') ?? [];
      return (r) => ps.every((p) => p(r));
    }
    case 'or_rules':
    case 'or_ids': {
      const ps = listOf(kind, kind === 'or_rules' ? 'rules' : 'ids') ?? [];
      return (r) => ps.some((p) => p(r));
    }
    case 'not_rule':
    case 'not_id': {
      const p = self(raw(v, kind), diag, `${path}.${kind}`);
      return p && ((r) => !p(r));
    }
    case 'header': {
      const t = compileHeaderMatcher(raw(v, 'header'), diag, `${path}.header`);
      return t && ((r) => t((n) => header(r, n)));
    }
    case 'url_path': {
      const pm = obj(v, 'url_path', diag, path);
      const t = pm && compileStringMatcher(raw(pm, 'path'), diag, `${path}.url_path.path`);
      return t && ((r) => t(pathOnly(r.req.path)));
    }
    default:
      return undefined;
  }
}

const PERMISSION_KINDS = ['and_rules', 'or_rules', 'any', 'header', 'url_path', 'destination_ip', 'destination_port',
  'not_rule', 'metadata', 'requested_server_name', 'destination_port_range', 'matcher', 'uri_template'];
const PRINCIPAL_KINDS = ['and_ids', 'or_ids', 'any', 'authenticated', 'source_ip', 'direct_remote_ip', 'remote_ip',
  'header', 'url_path', 'metadata', 'not_id', 'filter_state', 'custom'];

function oneKind(v: unknown, kinds: readonly string[], what: string, diag: Diagnostics, path: string): [Obj, string] | undefined {
  if (!isObj(v)) {
    diag.error(path, `must be a ${what}`);
    return undefined;
  }
  const set = kinds.filter((k) => raw(v, k) !== undefined);
  if (set.length !== 1) {
    diag.error(path, `${what} needs exactly one rule, found ${set.length === 0 ? 'none' : set.join(', ')}`);
    return undefined;
  }
  return [v, set[0]!];
}

function compilePermission(x: unknown, diag: Diagnostics, path: string): Pred | undefined {
  const k = oneKind(x, PERMISSION_KINDS, 'Permission', diag, path);
  if (!k) return undefined;
  const [v, kind] = k;
  const common = compileCommon(v, kind, diag, path, compilePermission);
  if (common) return common;
  switch (kind) {
    case 'destination_port': {
      const port = Number(raw(v, 'destination_port'));
      return (r) => r.info.downstreamLocalPort === port;
    }
    case 'destination_port_range': {
      const range = obj(v, 'destination_port_range', diag, path);
      const lo = Number(range && raw(range, 'start'));
      const hi = Number(range && raw(range, 'end'));
      return (r) => r.info.downstreamLocalPort >= lo && r.info.downstreamLocalPort < hi;
    }
    case 'and_rules': case 'or_rules': case 'not_rule': case 'any': case 'header': case 'url_path':
      return undefined; // compile error already reported
    default:
      diag.error(`${path}.${kind}`, 'not supported by pilotfish');
      return undefined;
  }
}

function compilePrincipal(x: unknown, diag: Diagnostics, path: string): Pred | undefined {
  const k = oneKind(x, PRINCIPAL_KINDS, 'Principal', diag, path);
  if (!k) return undefined;
  const [v, kind] = k;
  const common = compileCommon(v, kind, diag, path, compilePrincipal);
  if (common) return common;
  switch (kind) {
    case 'authenticated': {
      const a = obj(v, 'authenticated', diag, path) ?? {};
      const pn = raw(a, 'principal_name');
      if (pn === undefined) return (r) => r.info.peerIdentity !== undefined; // any authenticated peer
      const t = compileStringMatcher(pn, diag, `${path}.authenticated.principal_name`);
      return t && ((r) => r.info.peerIdentity !== undefined && t(r.info.peerIdentity));
    }
    case 'source_ip':
    case 'direct_remote_ip': {
      const t = compileCidr(raw(v, kind), diag, `${path}.${kind}`);
      return t && ((r) => t(r.info.downstreamAddress));
    }
    case 'remote_ip': {
      const t = compileCidr(raw(v, kind), diag, `${path}.${kind}`);
      return t && ((r) => t(remoteIp(r.info)));
    }
    case 'and_ids': case 'or_ids': case 'not_id': case 'any': case 'header': case 'url_path':
      return undefined;
    default:
      diag.error(`${path}.${kind}`, 'not supported by pilotfish');
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

function compileRbac(v: unknown, diag: Diagnostics, path: string): RbacEngine | undefined {
  if (!isObj(v)) {
    diag.error(path, 'must be an RBAC rule set');
    return undefined;
  }
  const action = (raw(v, 'action') ?? 'ALLOW') as Action;
  if (!['ALLOW', 'DENY', 'LOG'].includes(action)) {
    diag.error(`${path}.action`, `unknown action ${JSON.stringify(action)}`);
    return undefined;
  }
  const pol = obj(v, 'policies', diag, path) ?? {};
  const policies: Policy[] = [];
  for (const name of Object.keys(pol).sort()) {
    const pp = `${path}.policies.${name}`;
    const p = pol[name];
    if (!isObj(p)) {
      diag.error(pp, 'must be a Policy');
      continue;
    }
    if (raw(p, 'condition') !== undefined || raw(p, 'checked_condition') !== undefined) {
      diag.error(`${pp}.condition`, 'CEL conditions are not supported by pilotfish');
      continue;
    }
    const perms = arr(p, 'permissions', diag, pp).map((x, i) => compilePermission(x, diag, `${pp}.permissions[${i}]`));
    const princ = arr(p, 'principals', diag, pp).map((x, i) => compilePrincipal(x, diag, `${pp}.principals[${i}]`));
    if (perms.length === 0) diag.error(`${pp}.permissions`, 'at least one permission is required');
    if (princ.length === 0) diag.error(`${pp}.principals`, 'at least one principal is required');
    const ps = perms.filter((x): x is Pred => x !== undefined);
    const qs = princ.filter((x): x is Pred => x !== undefined);
    policies.push({
      name,
      // A policy matches if any permission and any principal match.
      permission: ps.length === 1 ? ps[0]! : (r) => ps.some((f) => f(r)),
      principal: qs.length === 1 ? qs[0]! : (r) => qs.some((f) => f(r)),
    });
  }
  return { action, policies };
}

interface RbacConfig {
  readonly rules: RbacEngine | undefined;
  readonly shadow: RbacEngine | undefined;
  readonly rulesStatPrefix: string;
  readonly shadowStatPrefix: string;
}

function decodeRbacConfig(c: Obj, diag: Diagnostics, path: string): RbacConfig {
  if (raw(c, 'matcher') !== undefined || raw(c, 'shadow_matcher') !== undefined) {
    diag.error(`${path}.matcher`, 'the matcher API is not supported by pilotfish; use rules');
  }
  const r = raw(c, 'rules');
  const s = raw(c, 'shadow_rules');
  return {
    rules: r === undefined ? undefined : compileRbac(r, diag, `${path}.rules`),
    shadow: s === undefined ? undefined : compileRbac(s, diag, `${path}.shadow_rules`),
    rulesStatPrefix: str(c, 'rules_stat_prefix', diag, path) ?? '',
    shadowStatPrefix: str(c, 'shadow_rules_stat_prefix', diag, path) ?? '',
  };
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
    const cfg = decodeRbacConfig(cfgIn.config, diag, path);
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
    const inner = obj(config, 'rbac', diag, path);
    if (inner === undefined) return FILTER_DISABLED;
    return decodeRbacConfig(inner, diag, `${path}.rbac`);
  },
});
