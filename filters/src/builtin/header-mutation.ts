import type { Diagnostics } from '../../../config/src/index.js';
import type { HeaderMap, HttpFilter } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import { arr, bool, isObj, obj, raw, str, type Obj } from '../util/fields.js';
import { applyHeaderOps, decodeHeaderValueOption, mutableHeaderName, type HeaderOp } from '../util/headers.js';
import { compileStringMatcher } from '../util/matchers.js';

/** envoy.extensions.filters.http.header_mutation.v3.HeaderMutation. */
export const HEADER_MUTATION_TYPE_URL = 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation';
export const HEADER_MUTATION_PER_ROUTE_TYPE_URL = 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute';

interface Mutations {
  readonly request: readonly HeaderOp[];
  readonly response: readonly HeaderOp[];
}

/** envoy.config.common.mutation_rules.v3.HeaderMutation: remove | append | remove_on_match. */
function decodeOps(list: readonly unknown[], diag: Diagnostics, path: string): HeaderOp[] {
  const ops: HeaderOp[] = [];
  list.forEach((m, i) => {
    const p = `${path}[${i}]`;
    if (!isObj(m)) {
      diag.error(p, 'must be a HeaderMutation');
      return;
    }
    const remove = str(m, 'remove', diag, p);
    const append = raw(m, 'append');
    const rom = obj(m, 'remove_on_match', diag, p);
    if ([remove, append, rom].filter((x) => x !== undefined).length !== 1) {
      diag.error(p, 'needs exactly one of remove, append, remove_on_match');
      return;
    }
    if (remove !== undefined) {
      const name = remove.toLowerCase();
      if (!mutableHeaderName(name)) diag.error(`${p}.remove`, `may not remove ${name}`);
      else ops.push({ kind: 'remove', name });
    } else if (rom !== undefined) {
      const test = compileStringMatcher(raw(rom, 'key_matcher'), diag, `${p}.remove_on_match.key_matcher`);
      if (test) ops.push({ kind: 'remove_on_match', test });
    } else {
      const op = decodeHeaderValueOption(append, diag, `${p}.append`);
      if (op) ops.push(op);
    }
  });
  return ops;
}

function decodeMutations(o: Obj, diag: Diagnostics, path: string): Mutations {
  const m = obj(o, 'mutations', diag, path);
  if (!m) return { request: [], response: [] };
  const mp = `${path}.mutations`;
  for (const unsupported of ['query_parameter_mutations', 'request_trailers_mutations', 'response_trailers_mutations']) {
    if (arr(m, unsupported, diag, mp).length > 0) diag.warn(`${mp}.${unsupported}`, 'not supported by pilotfish: ignored');
  }
  return {
    request: decodeOps(arr(m, 'request_mutations', diag, mp), diag, `${mp}.request_mutations`),
    response: decodeOps(arr(m, 'response_mutations', diag, mp), diag, `${mp}.response_mutations`),
  };
}

interface PerRoute {
  readonly mutations: Mutations;
}

function isPerRoute(v: unknown): v is PerRoute {
  return isObj(v) && isObj(v.mutations);
}

registerHttpFilter({
  kind: 'header_mutation',
  typeUrl: HEADER_MUTATION_TYPE_URL,
  perRouteTypeUrls: [HEADER_MUTATION_PER_ROUTE_TYPE_URL],
  create(cfg, diag, path): HttpFilter {
    const own = decodeMutations(cfg.config, diag, path);
    // Default: the filter-level list runs after the route's, so it wins; the flag flips that.
    const routeLast = bool(cfg.config, 'most_specific_header_mutations_wins', diag, path);
    const apply = (which: 'request' | 'response', headers: HeaderMap, pr: unknown): undefined => {
      const route = isPerRoute(pr) ? pr.mutations[which] : undefined;
      if (route && !routeLast) applyHeaderOps(route, headers);
      applyHeaderOps(own[which], headers);
      if (route && routeLast) applyHeaderOps(route, headers);
      return undefined;
    };
    return {
      name: cfg.name,
      typeUrl: HEADER_MUTATION_TYPE_URL,
      failurePolicy: 'FAIL_CLOSED',
      failureStatus: 500,
      decodeHeaders: (req, _info, pr) => apply('request', req.headers, pr),
      encodeHeaders: (res, _info, pr) => apply('response', res.headers, pr),
      describe: () => ({ kind: 'header_mutation', request_mutations: own.request.length, response_mutations: own.response.length }),
    };
  },
  decodePerRoute(_typeUrl, config, diag, path): PerRoute {
    return { mutations: decodeMutations(config, diag, path) };
  },
});
