import type { HeaderMap } from '../headers.js';
import { firstValue } from '../headers.js';

/**
 * x-forwarded-for / x-forwarded-proto as Envoy's ConnectionManagerUtility sets them: only
 * an edge proxy (use_remote_address) appends the peer to XFF (unless skip_xff_append) and
 * overwrites XFP with this hop's scheme; an inner proxy only fills XFP when it is absent.
 */
export function applyForwardedHeaders(headers: HeaderMap, useRemoteAddress: boolean, skipXffAppend: boolean, peer: string, scheme: string): void {
  if (useRemoteAddress) {
    if (!skipXffAppend && peer !== '') {
      const xff = firstValue(headers['x-forwarded-for']);
      headers['x-forwarded-for'] = xff ? `${xff}, ${peer}` : peer;
    }
    headers['x-forwarded-proto'] = scheme;
  } else if (headers['x-forwarded-proto'] === undefined) {
    headers['x-forwarded-proto'] = scheme;
  }
}

/** Envoy's Utility::appendVia: "<existing>, <via>". */
export function appendVia(h: HeaderMap, via: string): void {
  const cur = h.via;
  h.via = cur === undefined ? via : `${Array.isArray(cur) ? cur.join(', ') : cur}, ${via}`;
}

export type ServerHeaderMode = 'OVERWRITE' | 'APPEND_IF_ABSENT' | 'PASS_THROUGH';

/**
 * What every response (upstream's, local, tunnel) gets on its way out, as Envoy's
 * mutateResponseHeaders: `via` appended when configured, `server` per
 * server_header_transformation.
 */
export function applyResponseEdgeHeaders(h: HeaderMap, via: string | undefined, mode: ServerHeaderMode | undefined, serverName: string): void {
  if (via !== undefined) appendVia(h, via);
  switch (mode) {
    case 'OVERWRITE':
      h.server = serverName;
      break;
    case 'APPEND_IF_ABSENT':
      if (h.server === undefined) h.server = serverName;
      break;
    default:
      break;
  }
}
