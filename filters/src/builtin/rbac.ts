import { ObjectReader } from '../../../config/src/index.js';
import { FILTER_DISABLED, type HttpFilter, type LocalReply, type RequestHeadersView, type StreamInfo } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import type { FilterCounters } from '../stats.js';
import { headerValue } from '../util/fields.js';
import { compileRbac, evaluateRbac, type RbacEngine, type RbacSubject } from './rbac-engine.js';

/**
 * envoy.extensions.filters.http.rbac.v3.RBAC. Policies are compiled once by the shared
 * RBAC engine (rbac-engine.ts, also behind the network RBAC filter); a request evaluates
 * them in policy-name order (Envoy keeps policies in a sorted map, which fixes which name
 * appears in the DENY details).
 */
export const RBAC_TYPE_URL = 'envoy.extensions.filters.http.rbac.v3.RBAC';
export const RBAC_PER_ROUTE_TYPE_URL = 'envoy.extensions.filters.http.rbac.v3.RBACPerRoute';

/** A request as the RBAC engine sees it. */
class RequestSubject implements RbacSubject {
  constructor(private readonly req: RequestHeadersView, private readonly info: StreamInfo) {}

  header(name: string): string | undefined {
    switch (name) {
      case ':method': return this.req.method;
      case ':path': return this.req.path;
      case ':authority': return this.req.authority;
      case ':scheme': return this.req.scheme;
      default: return headerValue(this.req.headers[name]);
    }
  }

  get path(): string {
    const p = this.req.path;
    const q = p.indexOf('?');
    return q < 0 ? p : p.slice(0, q);
  }

  get directRemoteIp(): string {
    return this.info.downstreamAddress;
  }

  /** The original client: the proxy sets metadata "remote_ip" from XFF when it trusts it. */
  get remoteIp(): string {
    const m = this.info.metadata.get('remote_ip');
    return typeof m === 'string' ? m : this.info.downstreamAddress;
  }

  get destinationIp(): string {
    const c = this.info.connection;
    return c ? (c.originalDst?.address ?? c.localAddress) : '';
  }

  get destinationPort(): number {
    return this.info.downstreamLocalPort;
  }

  get requestedServerName(): string {
    return this.info.connection?.serverName ?? '';
  }

  get principal(): string | undefined {
    return this.info.peerIdentity ?? this.info.connection?.peerPrincipal;
  }

  metadata(filter: string): unknown {
    return this.info.metadata.get(filter);
  }

  /** The connection's filter state (istio_authn's io.istio.peer_principal, set_filter_state). */
  filterState(key: string): unknown {
    return this.info.connection?.filterState?.get(key);
  }
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
const METADATA_NAMESPACE = 'envoy.filters.http.rbac';

function run(cfg: RbacConfig, c: FilterCounters, req: RequestHeadersView, info: StreamInfo): LocalReply | undefined {
  const r = new RequestSubject(req, info);
  if (cfg.shadow !== undefined) {
    const s = evaluateRbac(cfg.shadow, r);
    c.inc(`${cfg.shadowStatPrefix}shadow_${s.allowed ? 'allowed' : 'denied'}`);
    // Envoy's dynamic metadata, for access logs and Istio's dry-run telemetry: under
    // "envoy.filters.http.rbac" (merged, as Envoy merges a second RBAC filter's fields), keys
    // prefixed with shadow_rules_stat_prefix, the policy id only when one matched.
    const prev = info.metadata.get(METADATA_NAMESPACE);
    info.metadata.set(METADATA_NAMESPACE, {
      ...(prev !== null && typeof prev === 'object' ? prev : {}),
      ...(s.policy !== undefined ? { [`${cfg.shadowStatPrefix}shadow_effective_policy_id`]: s.policy } : {}),
      [`${cfg.shadowStatPrefix}shadow_engine_result`]: s.allowed ? 'allowed' : 'denied',
    });
  }
  if (cfg.rules === undefined) return undefined;
  const e = evaluateRbac(cfg.rules, r);
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
  create(cfgIn, diag, path, ctx): HttpFilter {
    const cfg = decodeRbacConfig(ObjectReader.of(cfgIn.config, path, diag)!); // the chain builder hands over an object
    const c = ctx.stats.countersFor(cfgIn.name);
    const name = cfgIn.name;
    return {
      name,
      typeUrl: RBAC_TYPE_URL,
      failurePolicy: 'FAIL_CLOSED',
      failureStatus: 403,
      decodeHeaders(req, info, pr) {
        return run(pr === undefined ? cfg : (pr as RbacConfig), c, req, info);
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
