import type { ForwardAction, HeaderMutations, Route, RouteConfiguration, TypedExtension, VirtualHost } from '../../../config/src/index.js';
import { compileFullMatch, type Re2 } from '../../../config/src/index.js';
import { compileHeaderMatcher, compileQueryMatcher, type HeaderLookup } from './matchers.js';

/** What route matching needs to know of a request; pseudo-headers come from the fields. */
export interface RouteRequest {
  readonly authority: string;
  readonly path: string; // with query
  readonly method: string;
  readonly scheme: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** The proxy's random source for runtime_fraction matches (tests pass a seeded one). */
export type RandomSource = () => number;

export interface CompiledVirtualHost {
  readonly config: VirtualHost;
  readonly routes: readonly CompiledRoute[];
  /** connect_matcher routes, in order: the only ones a CONNECT request (no :path) can match. */
  readonly connectRoutes: readonly CompiledRoute[];
  /** Some route has header matchers or a grpc match: match() then builds a header lookup. */
  readonly readsHeaders: boolean;
  /** Some route has query parameter matchers: match() then offers the parsed query. */
  readonly readsQuery: boolean;
}

export interface CompiledRoute {
  readonly config: Route;
  readonly virtualHost: CompiledVirtualHost;
  readonly name: string;
  /** typed_per_filter_config merged: route entries override the virtual host's. */
  readonly perFilterConfig: Readonly<Record<string, TypedExtension>>;
  /** Header mutations in the order Envoy applies them: route, then virtual host, then route table. */
  readonly mutations: readonly HeaderMutations[];
  readonly regexRewrite?: Re2;
  /** perFilterConfig decoded by filters/ (set once while the table is compiled). */
  decodedPerFilterConfig?: Readonly<Record<string, unknown>>;
  matches(req: RouteRequest, pathOnly: string, lookup: HeaderLookup, query: () => URLSearchParams, random: RandomSource): boolean;
}

/**
 * An immutable, compiled route table: virtual hosts chosen by authority (exact, then
 * longest `*.suffix`, then longest `prefix.*`, then `*`), routes tried in order.
 * Built once per RDS update; requests hold the table they started with.
 */
export class RouteTable {
  private readonly exact = new Map<string, CompiledVirtualHost>();
  private readonly suffixes: [string, CompiledVirtualHost][] = [];
  private readonly prefixes: [string, CompiledVirtualHost][] = [];
  private readonly fallback: CompiledVirtualHost | undefined;
  readonly virtualHosts: readonly CompiledVirtualHost[];

  constructor(readonly config: RouteConfiguration) {
    let fallback: CompiledVirtualHost | undefined;
    this.virtualHosts = config.virtualHosts.map((vh) => compileVirtualHost(vh, config));
    for (const cvh of this.virtualHosts) {
      for (const raw of cvh.config.domains) {
        const d = raw.toLowerCase();
        if (d === '*') fallback ??= cvh;
        else if (d.startsWith('*')) this.suffixes.push([d.slice(1), cvh]);
        else if (d.endsWith('*')) this.prefixes.push([d.slice(0, -1), cvh]);
        else this.exact.set(d, cvh);
      }
    }
    this.suffixes.sort((a, b) => b[0].length - a[0].length);
    this.prefixes.sort((a, b) => b[0].length - a[0].length);
    this.fallback = fallback;
  }

  get name(): string {
    return this.config.name;
  }

  /**
   * The virtual host for an authority; tries with the port first, then without it — or,
   * with ignore_port_in_host_matching, only without it, as Envoy does.
   */
  virtualHostFor(authority: string): CompiledVirtualHost | undefined {
    // Only `*` (a sidecar's catch-all): no lowercased or port-less copy of the authority is needed.
    if (this.exact.size === 0 && this.suffixes.length === 0 && this.prefixes.length === 0) return this.fallback;
    let host = authority.toLowerCase();
    if (this.config.ignorePortInHostMatching === true) {
      const c = host.lastIndexOf(':');
      if (c > 0 && host.indexOf(']') < c) host = host.slice(0, c);
    }
    const found = this.lookupHost(host);
    if (found) return found;
    const colon = host.lastIndexOf(':');
    if (colon > 0 && host.indexOf(']') < colon) {
      const bare = this.lookupHost(host.slice(0, colon));
      if (bare) return bare;
    }
    return this.fallback;
  }

  private lookupHost(host: string): CompiledVirtualHost | undefined {
    const e = this.exact.get(host);
    if (e) return e;
    // Indexed loops: a for-of with destructuring allocates an iterator per request when not optimised.
    const suffixes = this.suffixes;
    for (let i = 0; i < suffixes.length; i++) {
      const [suffix, vh] = suffixes[i]!;
      if (host.length > suffix.length && host.endsWith(suffix)) return vh;
    }
    const prefixes = this.prefixes;
    for (let i = 0; i < prefixes.length; i++) {
      const [prefix, vh] = prefixes[i]!;
      if (host.length > prefix.length && host.startsWith(prefix)) return vh;
    }
    return undefined;
  }

  match(req: RouteRequest, random: RandomSource = Math.random): CompiledRoute | undefined {
    const vh = this.virtualHostFor(req.authority);
    if (!vh) return undefined;
    const q = req.path.indexOf('?');
    const pathOnly = q < 0 ? req.path : req.path.slice(0, q);
    // The closures only for virtual hosts whose routes read headers or the query: most
    // match on the path alone, and two closures per request were ~150 bytes of garbage.
    const query = vh.readsQuery ? queryOf(req.path, q) : NO_QUERY;
    const lookup = vh.readsHeaders ? headerLookup(req) : NO_HEADERS;
    // CONNECT without a path (HTTP/1.1, or HTTP/2 without :protocol) is matched by connect_matcher
    // routes only; Envoy's path matchers never see it. Path requests never match connect routes.
    const routes = pathOnly === '' && req.method === 'CONNECT' ? vh.connectRoutes : vh.routes;
    for (let i = 0; i < routes.length; i++) if (routes[i]!.matches(req, pathOnly, lookup, query, random)) return routes[i];
    return undefined;
  }
}

function compileVirtualHost(vh: VirtualHost, rc: RouteConfiguration): CompiledVirtualHost {
  const routes: CompiledRoute[] = [];
  const connectRoutes: CompiledRoute[] = [];
  let readsHeaders = false;
  let readsQuery = false;
  for (const r of vh.routes) {
    if (r.match.headers.length > 0 || r.match.grpc) readsHeaders = true;
    if (r.match.queryParameters.length > 0) readsQuery = true;
  }
  const cvh: CompiledVirtualHost = { config: vh, routes, connectRoutes, readsHeaders, readsQuery };
  vh.routes.forEach((r, i) => {
    const c = compileRoute(r, i, cvh, rc);
    routes.push(c);
    if (r.match.path.kind === 'connect_matcher') connectRoutes.push(c);
  });
  return cvh;
}

function compileRoute(route: Route, index: number, vh: CompiledVirtualHost, rc: RouteConfiguration): CompiledRoute {
  const m = route.match;
  const cs = m.caseSensitive;
  let pathTest: (p: string) => boolean;
  const p = m.path;
  switch (p.kind) {
    case 'connect_matcher':
      // Reached through connectRoutes, whose requests have no path.
      pathTest = (x) => x === '';
      break;
    case 'prefix': {
      const want = cs ? p.value : p.value.toLowerCase();
      pathTest = want === '/' || want === '' ? () => true : cs ? (x) => x.startsWith(want) : (x) => x.toLowerCase().startsWith(want);
      break;
    }
    case 'path': {
      const want = cs ? p.value : p.value.toLowerCase();
      pathTest = cs ? (x) => x === want : (x) => x.toLowerCase() === want;
      break;
    }
    case 'path_separated_prefix': {
      const want = cs ? p.value : p.value.toLowerCase();
      pathTest = (x) => {
        const s = cs ? x : x.toLowerCase();
        return s === want || (s.startsWith(want) && s.charCodeAt(want.length) === 47 /* / */);
      };
      break;
    }
    case 'safe_regex': {
      const re = compileFullMatch(p.regex, !cs) as Re2;
      pathTest = (x) => re.test(x);
      break;
    }
  }
  const headerTests = m.headers.map(compileHeaderMatcher);
  const queryTests = m.queryParameters.map(compileQueryMatcher);
  const grpc = m.grpc;
  const fraction = m.runtimeFraction;
  const action = route.action;
  let regexRewrite: Re2 | undefined;
  if (action.kind === 'route' && action.regexRewrite) regexRewrite = compileFullMatch(action.regexRewrite.regex) as Re2;
  const matches = (req: RouteRequest, pathOnly: string, lookup: HeaderLookup, query: () => URLSearchParams, random: RandomSource): boolean => {
    if (!pathTest(pathOnly)) return false;
    for (let i = 0; i < headerTests.length; i++) if (!headerTests[i]!(lookup)) return false;
    if (grpc) {
      const ct = lookup('content-type');
      if (ct === undefined || !ct.startsWith('application/grpc')) return false;
    }
    if (queryTests.length > 0) {
      const params = query();
      for (let i = 0; i < queryTests.length; i++) if (!queryTests[i]!(params)) return false;
    }
    if (fraction !== undefined && random() >= fraction) return false;
    void req;
    return true;
  };
  return {
    config: route, virtualHost: vh, name: route.name || `${vh.config.name}/${index}`,
    perFilterConfig: { ...vh.config.typedPerFilterConfig, ...route.typedPerFilterConfig },
    mutations: [route, vh.config, rc],
    ...(regexRewrite ? { regexRewrite } : {}),
    matches,
  };
}

const NO_HEADERS: HeaderLookup = () => undefined;
const NO_QUERY = (): URLSearchParams => new URLSearchParams('');

/** The request's headers by name for header matchers; pseudo-headers come from the request's fields. */
function headerLookup(req: RouteRequest): HeaderLookup {
  return (name) => {
    if (name.charCodeAt(0) === 58 /* : */) {
      switch (name) {
        case ':method': return req.method;
        case ':path': return req.path;
        case ':authority': return req.authority;
        case ':scheme': return req.scheme;
        default: return undefined;
      }
    }
    const v = req.headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  };
}

/** The query parameters, parsed on first use (path[q] is the '?', q < 0: none). */
function queryOf(path: string, q: number): () => URLSearchParams {
  let params: URLSearchParams | undefined;
  return () => (params ??= new URLSearchParams(q < 0 ? '' : path.slice(q + 1)));
}

/** Rewrites the path for a forward action (prefix_rewrite or regex_rewrite); keeps the query. */
export function rewritePath(route: CompiledRoute, action: ForwardAction, path: string): string {
  if (action.prefixRewrite === undefined && !route.regexRewrite) return path;
  const q = path.indexOf('?');
  const pathOnly = q < 0 ? path : path.slice(0, q);
  const query = q < 0 ? '' : path.slice(q);
  if (action.prefixRewrite !== undefined) {
    const p = route.config.match.path;
    if (p.kind === 'prefix' || p.kind === 'path_separated_prefix' || p.kind === 'path') {
      return action.prefixRewrite + pathOnly.slice(p.value.length) + query;
    }
    return path;
  }
  const sub = action.regexRewrite!.substitution.replace(/\\(\d)/g, '$$$1');
  return route.regexRewrite!.replace(pathOnly, sub) + query;
}
