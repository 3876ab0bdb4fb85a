/**
 * Envoy's built-in non-terminal network filters pilotfish implements, registered by type
 * URL (importing this module registers them): envoy.filters.network.rbac and
 * envoy.filters.network.set_filter_state.
 */
import { NETWORK_RBAC_TYPE, NETWORK_SET_FILTER_STATE_TYPE, ObjectReader } from '../../../config/src/index.js';
import { compileRbac, evaluateRbac, type RbacEngine, type RbacSubject } from '../../../filters/src/index.js';
import { effectiveDestination, filterState } from '../net/connection-info.js';
import type { Counter } from '../stats/stats.js';
import { registerNetworkFilter, type DataVerdict, type NetworkConnection, type NetworkFilter } from './network-filter.js';

// ---------------------------------------------------------------- network RBAC

/** A connection as the RBAC engine sees it: no headers, no path (rules on them do not match). */
class ConnectionSubject implements RbacSubject {
  constructor(private readonly conn: NetworkConnection) {}
  header(): undefined {
    return undefined;
  }
  readonly path = undefined;
  get directRemoteIp(): string {
    return this.conn.info.remoteAddress;
  }
  get remoteIp(): string {
    return this.conn.info.remoteAddress;
  }
  get destinationIp(): string {
    return effectiveDestination(this.conn.info).address;
  }
  get destinationPort(): number {
    return effectiveDestination(this.conn.info).port;
  }
  get requestedServerName(): string {
    return this.conn.info.serverName ?? '';
  }
  get principal(): string | undefined {
    return this.conn.info.peerPrincipal;
  }
  /** Connection dynamic metadata, as network filters leave it in filter state under the filter's name. */
  metadata(filter: string): unknown {
    return this.conn.info.filterState?.get(filter);
  }
  filterState(key: string): unknown {
    return this.conn.info.filterState?.get(key);
  }
}

const ENFORCEMENT = ['ONE_TIME_ON_FIRST_BYTE', 'CONTINUOUS'] as const;

interface RbacCounters {
  readonly allowed: Counter;
  readonly denied: Counter;
  readonly logged: Counter;
  readonly notLogged: Counter;
  readonly shadowAllowed: Counter;
  readonly shadowDenied: Counter;
}

/** Per connection: the enforced result once known (ONE_TIME_ON_FIRST_BYTE evaluates once). */
interface RbacState {
  decided?: boolean;
  denied?: boolean;
}

/**
 * envoy.extensions.filters.network.rbac.v3.RBAC, with Envoy's semantics: the policies are
 * evaluated when the client's first bytes arrive (ONE_TIME_ON_FIRST_BYTE, the default)
 * or on every chunk (CONTINUOUS); a DENY closes the connection (after delay_deny, with
 * the client's bytes held back meanwhile) with termination details
 * `rbac_access_denied_matched_policy[<policy>|none]`. On HTTP chains the bytes go to the
 * codec, so the check runs once when the connection starts, which is the same moment for
 * a client-first protocol. Stats: `<stat_prefix>rbac.allowed|denied`,
 * `<stat_prefix>rbac.<shadow_rules_stat_prefix>shadow_allowed|shadow_denied`.
 */
registerNetworkFilter(NETWORK_RBAC_TYPE, (cfg, diag, path, ctx): NetworkFilter | undefined => {
  const r = ObjectReader.of(cfg.config, path, diag);
  if (!r) return undefined;
  const before = diag.errors.length;
  if (r.has('matcher') || r.has('shadow_matcher')) {
    r.accept('matcher', 'shadow_matcher');
    diag.error(r.child('matcher'), 'the matcher API is not supported by pilotfish; use rules');
  }
  const statPrefix = r.requiredString('stat_prefix') ?? '';
  const rr = r.object('rules');
  const sr = r.object('shadow_rules');
  const rules: RbacEngine | undefined = rr && compileRbac(rr);
  const shadow: RbacEngine | undefined = sr && compileRbac(sr);
  const shadowPrefix = r.string('shadow_rules_stat_prefix', '');
  const enforcement = r.enumOf('enforcement_type', ENFORCEMENT, 'ONE_TIME_ON_FIRST_BYTE');
  const delayDeny = r.duration('delay_deny', 0) ?? 0;
  r.finish();
  if (diag.errors.length > before) return undefined;
  const s = ctx.stats.rootScope;
  const base = `${statPrefix}rbac.`;
  const c: RbacCounters = {
    allowed: s.counter(`${base}allowed`), denied: s.counter(`${base}denied`),
    logged: s.counter(`${base}logged`), notLogged: s.counter(`${base}not_logged`),
    shadowAllowed: s.counter(`${base}${shadowPrefix}shadow_allowed`), shadowDenied: s.counter(`${base}${shadowPrefix}shadow_denied`),
  };
  const states = new WeakMap<NetworkConnection, RbacState>();

  /** Evaluates both engines; true when the connection may go on. */
  const check = (conn: NetworkConnection): boolean => {
    const subject = new ConnectionSubject(conn);
    if (shadow) {
      const sh = evaluateRbac(shadow, subject);
      (sh.allowed ? c.shadowAllowed : c.shadowDenied).inc();
      // Envoy's dynamic metadata of the filter (namespace envoy.filters.network.rbac, keys
      // prefixed with shadow_rules_stat_prefix, the policy id only when one matched), kept in
      // the connection's filter state: pilotfish has no separate connection metadata.
      filterState(conn.info).set('envoy.filters.network.rbac', {
        ...(sh.policy !== undefined ? { [`${shadowPrefix}shadow_effective_policy_id`]: sh.policy } : {}),
        [`${shadowPrefix}shadow_engine_result`]: sh.allowed ? 'allowed' : 'denied',
      });
    }
    if (!rules) return true;
    const e = evaluateRbac(rules, subject);
    if (rules.action === 'LOG') {
      (e.policy === undefined ? c.notLogged : c.logged).inc();
      return true;
    }
    if (e.allowed) {
      c.allowed.inc();
      return true;
    }
    c.denied.inc();
    const details = `rbac_access_denied_matched_policy[${e.policy ?? 'none'}]`;
    if (delayDeny > 0) {
      const t = setTimeout(() => conn.close(details), delayDeny);
      t.unref();
    } else conn.close(details);
    return false;
  };

  const onData = (_chunk: Buffer, _end: boolean, conn: NetworkConnection): DataVerdict => {
    let st = states.get(conn);
    if (!st) states.set(conn, (st = {}));
    if (st.denied) return { data: null }; // waiting out delay_deny: nothing reaches the upstream
    if (!st.decided || enforcement === 'CONTINUOUS') {
      st.decided = true;
      if (!check(conn)) {
        st.denied = true;
        return delayDeny > 0 ? { data: null } : 'stop';
      }
    }
    // ONE_TIME_ON_FIRST_BYTE: decided for good; later bytes need not pass this hook.
    return enforcement === 'CONTINUOUS' ? undefined : 'detach';
  };

  const filter: NetworkFilter = {
    name: cfg.name,
    typeUrl: cfg.typeUrl,
    ...(ctx.chainKind === 'http'
      ? { onNewConnection: (conn: NetworkConnection) => (check(conn) || delayDeny > 0 ? 'continue' as const : 'stop' as const) }
      : { onData }),
    describe: () => ({
      kind: 'network_rbac', stat_prefix: statPrefix, enforcement_type: enforcement,
      action: rules?.action, policies: rules?.policies.map((p) => p.name) ?? [], shadow_policies: shadow?.policies.map((p) => p.name) ?? [],
    }),
  };
  return filter;
});

// ---------------------------------------------------------------- set_filter_state

type ConnGetter = (conn: NetworkConnection) => string | undefined;

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The substitution commands that mean something for a connection before any request. */
const CONNECTION_COMMANDS: Record<string, ConnGetter> = {
  DOWNSTREAM_REMOTE_ADDRESS: (c) => hostPort(c.info.remoteAddress, c.info.remotePort),
  DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: (c) => c.info.remoteAddress,
  DOWNSTREAM_REMOTE_PORT: (c) => String(c.info.remotePort),
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS: (c) => hostPort(c.info.remoteAddress, c.info.remotePort),
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT: (c) => c.info.remoteAddress,
  DOWNSTREAM_LOCAL_ADDRESS: (c) => {
    const d = effectiveDestination(c.info);
    return hostPort(d.address, d.port);
  },
  DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: (c) => effectiveDestination(c.info).address,
  DOWNSTREAM_LOCAL_PORT: (c) => String(effectiveDestination(c.info).port),
  REQUESTED_SERVER_NAME: (c) => c.info.serverName,
  DOWNSTREAM_PEER_URI_SAN: (c) => c.info.peerPrincipal,
  FILTER_CHAIN_NAME: (c) => c.info.filterChainName,
  DOWNSTREAM_TRANSPORT_FAILURE_REASON: () => undefined,
};

/** Compiles a connection-level format string (%COMMAND%, %FILTER_STATE(key[:PLAIN])%); problems to diag. */
function compileConnectionFormat(text: string, report: (msg: string) => void): ((c: NetworkConnection) => string) | undefined {
  const parts: (string | ConnGetter)[] = [];
  const re = /%([A-Z_]+)(?:\(([^)]*)\))?%|%%/g;
  let last = 0;
  let ok = true;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) parts.push(text.slice(last, m.index));
    last = re.lastIndex;
    if (m[0] === '%%') {
      parts.push('%');
      continue;
    }
    const [, cmd, arg] = m;
    if (cmd === 'FILTER_STATE') {
      const key = (arg ?? '').split(':')[0] ?? '';
      parts.push((c) => {
        const v = c.info.filterState?.get(key);
        if (v === undefined) return undefined;
        if (typeof v === 'string') return v;
        const s = (v as { serializeAsString?: () => unknown } | null)?.serializeAsString?.();
        return typeof s === 'string' ? s : JSON.stringify(v);
      });
      continue;
    }
    const g = cmd !== undefined ? CONNECTION_COMMANDS[cmd] : undefined;
    if (!g) {
      report(`%${cmd}% is not available on a connection in pilotfish (supported: ${[...Object.keys(CONNECTION_COMMANDS), 'FILTER_STATE'].join(', ')})`);
      ok = false;
      continue;
    }
    parts.push(g);
  }
  if (last < text.length) parts.push(text.slice(last));
  if (!ok) return undefined;
  return (c) => parts.map((p) => (typeof p === 'string' ? p : (p(c) ?? '-'))).join('');
}

interface FilterStateValue {
  readonly key: string;
  readonly value: (c: NetworkConnection) => string;
  readonly readOnly: boolean;
  readonly skipIfEmpty: boolean;
}

/**
 * envoy.extensions.filters.network.set_filter_state.v3.Config: on_new_connection, each
 * value's format string evaluated against the connection and stored in the connection's
 * filter state under object_key (a read-only key set earlier is left alone, as Envoy
 * refuses to overwrite it). `shared_with_upstream` and `factory_key` are accepted: values
 * are plain strings here and the filter state travels with the connection anyway.
 */
registerNetworkFilter(NETWORK_SET_FILTER_STATE_TYPE, (cfg, diag, path): NetworkFilter | undefined => {
  const r = ObjectReader.of(cfg.config, path, diag);
  if (!r) return undefined;
  const before = diag.errors.length;
  const values: FilterStateValue[] = [];
  for (const v of r.objects('on_new_connection')) {
    const key = v.requiredString('object_key');
    v.string('factory_key', '');
    const fs = v.object('format_string');
    let value: ((c: NetworkConnection) => string) | undefined;
    if (!fs) diag.error(v.child('format_string'), 'is required');
    else {
      const src = fs.object('text_format_source');
      const text = fs.has('text_format') ? fs.string('text_format', '') : src ? src.string('inline_string', '') : undefined;
      src?.finish();
      fs.bool('omit_empty_values', false);
      fs.finish();
      if (text === undefined) diag.error(fs.path, 'only text_format / text_format_source.inline_string are supported by pilotfish');
      else value = compileConnectionFormat(text, (m) => diag.error(fs.path, m));
    }
    const readOnly = v.bool('read_only', false);
    const skipIfEmpty = v.bool('skip_if_empty', false);
    v.enumOf('shared_with_upstream', ['NONE', 'ONCE', 'TRANSITIVE'] as const, 'NONE');
    v.finish();
    if (key !== undefined && value) values.push({ key, value, readOnly, skipIfEmpty });
  }
  r.finish();
  if (diag.errors.length > before) return undefined;
  const readOnlyKeys = new WeakMap<NetworkConnection, Set<string>>();
  return {
    name: cfg.name,
    typeUrl: cfg.typeUrl,
    onNewConnection(conn) {
      const state = filterState(conn.info);
      let ro = readOnlyKeys.get(conn);
      for (const v of values) {
        if (ro?.has(v.key)) continue;
        const s = v.value(conn);
        if (v.skipIfEmpty && (s === '' || s === '-')) continue;
        state.set(v.key, s);
        if (v.readOnly) {
          if (!ro) readOnlyKeys.set(conn, (ro = new Set()));
          ro.add(v.key);
        }
      }
      return 'continue';
    },
    describe: () => ({ kind: 'set_filter_state', keys: values.map((v) => v.key) }),
  };
});
