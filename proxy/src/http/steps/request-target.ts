import type { RequestHeadersView } from '../../../../filters/src/index.js';
import { stripFragment, transformPath, type PathOptions } from '../path-normalize.js';
import type { LocalReplySpec } from '../response-flags.js';

/**
 * Envoy's path and host normalisation (conn_manager_utility.cc), before routing and any
 * filter so that RBAC, the route and the upstream see one path: the fragment is dropped,
 * only relative paths are served (and `*`, and CONNECT's empty path), the configured
 * path options run, the port is stripped from the host. Mutates `view` (and its Host /
 * :authority header); returns what to answer instead, or undefined to go on. With no
 * option configured it costs two character tests.
 */
export type TargetOutcome =
  | { readonly kind: 'not_relative'; readonly reply: LocalReplySpec }
  | { readonly kind: 'rejected'; readonly reply: LocalReplySpec }
  | { readonly kind: 'redirect'; readonly reply: LocalReplySpec; readonly location: string };

const PATH_NOT_RELATIVE: TargetOutcome = { kind: 'not_relative', reply: { status: 404, body: '', details: 'absolute_path_rejected' } };
const PATH_REJECTED: TargetOutcome = { kind: 'rejected', reply: { status: 400, body: '', details: 'path_normalization_failed' } };
const REDIRECT: LocalReplySpec = { status: 307, body: '', details: 'path_normalization_failed' };

export interface TargetOptions {
  /** Any path option is on (pathOptionsActive). */
  readonly pathOps: boolean;
  readonly paths: PathOptions;
  readonly stripPort: 'NONE' | 'MATCHING' | 'ANY';
}

export function normalizeTarget(view: RequestHeadersView, o: TargetOptions, localPort: number | undefined): TargetOutcome | undefined {
  let path = view.path;
  if (path.indexOf('#') >= 0) path = view.path = stripFragment(path);
  const relative = path.charCodeAt(0) === 47 /* / */;
  if (!relative && path !== '*' && !(view.method === 'CONNECT' && path === '')) return PATH_NOT_RELATIVE;
  if (o.pathOps && relative) {
    const v = transformPath(path, o.paths);
    if (v.action === 'reject') return PATH_REJECTED;
    view.path = v.path;
    if (v.action === 'redirect') return { kind: 'redirect', reply: REDIRECT, location: v.path };
  }
  if (o.stripPort !== 'NONE' && view.method !== 'CONNECT') stripHostPort(view, o.stripPort, localPort);
  return undefined;
}

/** strip_matching_host_port / strip_any_host_port (an IPv6 literal's colons are not a port). */
function stripHostPort(view: RequestHeadersView, mode: 'MATCHING' | 'ANY', localPort: number | undefined): void {
  const a = view.authority;
  const colon = a.lastIndexOf(':');
  if (colon <= 0 || a.indexOf(']', colon) >= 0) return;
  if (mode !== 'ANY' && Number(a.slice(colon + 1)) !== localPort) return;
  const host = a.slice(0, colon);
  view.authority = host;
  if (view.headers.host !== undefined) view.headers.host = host;
  if (view.headers[':authority'] !== undefined) view.headers[':authority'] = host;
}
