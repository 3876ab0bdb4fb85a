/**
 * envoy.filters.http.set_filter_state, as istiod's waypoint uses it on connect_terminate
 * (the `connect_authority` filter): per CONNECT stream, store the authority as
 * envoy.filters.listener.original_dst.local_ip and the caller's identity as
 * io.istio.peer_principal, shared with the upstream — the internal listener the stream
 * is tunnelled into reads them as its original destination and downstream identity.
 *
 * Values live in the stream's own filter-state map (StreamInfo.metadata under
 * STREAM_FILTER_STATE); the keys marked shared_with_upstream are listed beside them.
 */
import { ObjectReader, type Diagnostics } from '../../../config/src/index.js';
import { registerHttpFilter, type HttpFilter, type RequestHeadersView, type StreamInfo } from '../../../filters/src/index.js';
import type { ConnectionInfo } from '../net/connection-info.js';
import { compileFormat, type CompiledFormat } from './format.js';
import { SHARED_WITH_UPSTREAM, STREAM_FILTER_STATE } from './upstreams.js';

export const SET_FILTER_STATE_HTTP_TYPE = 'envoy.extensions.filters.http.set_filter_state.v3.Config';

interface Assignment {
  readonly key: string;
  readonly value: CompiledFormat;
  readonly shared: boolean;
  readonly readOnly: boolean;
  readonly skipIfEmpty: boolean;
}

/** FilterStateValue list (on_request_headers / on_new_connection): shared by the HTTP and network forms. */
export function decodeFilterStateValues(r: ObjectReader, field: string): Assignment[] {
  const out: Assignment[] = [];
  for (const v of r.objects(field)) {
    const key = v.string('object_key');
    if (key === undefined || key === '') v.diag.error(v.child('object_key'), 'is required');
    // factory_key names the object type Envoy builds (envoy.string, ...): pilotfish keeps strings.
    v.accept('factory_key');
    const fs = v.object('format_string');
    let value: CompiledFormat | undefined;
    if (!fs) v.diag.error(v.child('format_string'), 'is required');
    else {
      let text = fs.string('text_format');
      const src = fs.object('text_format_source');
      if (src) {
        text = src.string('inline_string');
        src.finish();
        if (text === undefined) src.diag.error(src.child('inline_string'), 'is required (pilotfish reads inline text here)');
      }
      // formatters (CEL etc.) are reported by finish(); an unknown operator is an error below.
      fs.accept('omit_empty_values');
      fs.finish();
      if (text !== undefined) {
        const f = compileFormat(text);
        if (typeof f === 'string') fs.diag.error(src ? src.child('inline_string') : fs.child('text_format'), f);
        else value = f;
      } else if (!src) fs.diag.error(fs.child('text_format'), 'is required (text_format or text_format_source)');
    }
    const sharing = v.string('shared_with_upstream', 'NONE') ?? 'NONE';
    if (!['NONE', 'ONCE', 'TRANSITIVE'].includes(sharing)) v.diag.error(v.child('shared_with_upstream'), `unknown value "${sharing}"`);
    const readOnly = v.bool('read_only', false);
    const skipIfEmpty = v.bool('skip_if_empty', false);
    v.finish();
    if (key && value) out.push({ key, value, shared: sharing !== 'NONE', readOnly, skipIfEmpty });
  }
  return out;
}

/** Applies assignments to a filter-state map (read-only keys already present are kept). */
export function applyFilterState(state: Map<string, unknown>, list: readonly Assignment[], ctx: Parameters<CompiledFormat>[0]): void {
  for (const a of list) {
    const v = a.value(ctx);
    if (v === '' && a.skipIfEmpty) continue;
    if (state.has(a.key) && readOnlyKeys(state).has(a.key)) continue;
    state.set(a.key, v);
    if (a.readOnly) readOnlyKeys(state).add(a.key);
    if (a.shared) {
      let s = state.get(SHARED_WITH_UPSTREAM) as Set<string> | undefined;
      if (!s) state.set(SHARED_WITH_UPSTREAM, (s = new Set()));
      s.add(a.key);
    }
  }
}

const READ_ONLY = 'pilotfish.read_only';
function readOnlyKeys(state: Map<string, unknown>): Set<string> {
  let s = state.get(READ_ONLY) as Set<string> | undefined;
  if (!s) state.set(READ_ONLY, (s = new Set()));
  return s;
}

/** What the format sees of the downstream connection from a stream (no port: StreamInfo has none). */
function connectionOf(info: StreamInfo): ConnectionInfo {
  return {
    remoteAddress: info.downstreamAddress, remotePort: 0, localAddress: '', localPort: info.downstreamLocalPort,
    transportProtocol: '', applicationProtocols: [], filterChainName: '',
    ...(info.peerIdentity !== undefined ? { peerPrincipal: info.peerIdentity } : {}),
  };
}

registerHttpFilter({
  kind: 'set_filter_state',
  typeUrl: SET_FILTER_STATE_HTTP_TYPE,
  create(cfg, diag: Diagnostics, path): HttpFilter | undefined {
    const r = ObjectReader.of(cfg.config, path, diag);
    if (!r) return undefined;
    const before = diag.errors.length;
    const list = decodeFilterStateValues(r, 'on_request_headers');
    r.finish();
    if (diag.errors.length > before) return undefined;
    return {
      name: cfg.name,
      typeUrl: SET_FILTER_STATE_HTTP_TYPE,
      failurePolicy: 'FAIL_CLOSED',
      failureStatus: 500,
      decodeHeaders(req: RequestHeadersView, info: StreamInfo): undefined {
        let state = info.metadata.get(STREAM_FILTER_STATE) as Map<string, unknown> | undefined;
        if (!state) info.metadata.set(STREAM_FILTER_STATE, (state = new Map()));
        const headers = { ...req.headers, ':authority': req.authority, ':method': req.method, ':path': req.path };
        applyFilterState(state, list, { info: connectionOf(info), headers, filterState: state });
        return undefined;
      },
      describe: () => ({ kind: 'set_filter_state', keys: list.map((a) => a.key) }),
    };
  },
});
