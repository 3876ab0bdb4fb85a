import type { PathMatch, RedirectAction } from '../../../../config/src/index.js';

/** What a redirect reads of the request. */
export interface RedirectInput {
  readonly scheme: string;
  readonly authority: string;
  /** With the query. */
  readonly path: string;
}

/**
 * The Location of a redirect route (Envoy's RouteEntryImplBase::newUri): scheme, host and
 * port, then path_redirect or prefix_rewrite (of the part the route's prefix/path matched),
 * the query kept unless strip_query.
 */
export function redirectLocation(a: RedirectAction, req: RedirectInput, matched: PathMatch | undefined): string {
  const scheme = a.httpsRedirect ? 'https' : a.schemeRedirect ?? req.scheme;
  let host = a.hostRedirect ?? req.authority;
  if (a.portRedirect !== undefined) host = `${host.replace(/:\d+$/, '')}:${a.portRedirect}`;
  else if (a.httpsRedirect || a.schemeRedirect) host = host.replace(/:\d+$/, '');
  const path = req.path;
  const q = path.indexOf('?');
  let pathOnly = q < 0 ? path : path.slice(0, q);
  let query = q < 0 ? '' : path.slice(q);
  if (a.pathRedirect !== undefined) {
    const pq = a.pathRedirect.indexOf('?');
    if (pq >= 0) {
      pathOnly = a.pathRedirect.slice(0, pq);
      query = a.pathRedirect.slice(pq);
    } else pathOnly = a.pathRedirect;
  } else if (a.prefixRewrite !== undefined && matched !== undefined) {
    if (matched.kind === 'prefix' || matched.kind === 'path' || matched.kind === 'path_separated_prefix') pathOnly = a.prefixRewrite + pathOnly.slice(matched.value.length);
  }
  if (a.stripQuery) query = '';
  return `${scheme}://${host}${pathOnly}${query}`;
}
