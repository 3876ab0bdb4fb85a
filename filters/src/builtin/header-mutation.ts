import { ObjectReader } from '../../../config/src/index.js';
import type { HeaderMap, HttpFilter } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import { isObj } from '../util/fields.js';
import { applyHeaderOps, mutableHeaderName, readHeaderValueOption, type HeaderOp } from '../util/headers.js';
import { compileStringMatcher } from '../util/matchers.js';

/** envoy.extensions.filters.http.header_mutation.v3.HeaderMutation. */
export const HEADER_MUTATION_TYPE_URL = 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation';
export const HEADER_MUTATION_PER_ROUTE_TYPE_URL = 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute';

interface Mutations {
  readonly request: readonly HeaderOp[];
  readonly response: readonly HeaderOp[];
}

const OP_KINDS = ['remove', 'append', 'remove_on_match'] as const;

/** envoy.config.common.mutation_rules.v3.HeaderMutation: remove | append | remove_on_match. */
function decodeOps(items: readonly ObjectReader[]): HeaderOp[] {
  const ops: HeaderOp[] = [];
  for (const m of items) {
    const which = m.oneof(OP_KINDS, true);
    if (OP_KINDS.filter((k) => m.has(k)).length > 1) {
      m.accept(...OP_KINDS); // reported by oneof; decoding one of them would only add noise
      continue;
    }
    if (which === 'remove') {
      const name = m.string('remove', '').toLowerCase();
      if (!mutableHeaderName(name)) m.diag.error(m.child('remove'), `may not remove ${name}`);
      else ops.push({ kind: 'remove', name });
    } else if (which === 'remove_on_match') {
      const rom = m.object('remove_on_match');
      if (rom) {
        const test = compileStringMatcher(rom.get('key_matcher'), rom.diag, rom.child('key_matcher'));
        rom.finish();
        if (test) ops.push({ kind: 'remove_on_match', test });
      }
    } else if (which === 'append') {
      const a = m.object('append');
      const op = a ? readHeaderValueOption(a) : undefined;
      if (op) ops.push(op);
    }
    m.finish();
  }
  return ops;
}

function decodeMutations(r: ObjectReader): Mutations {
  const m = r.object('mutations');
  if (!m) return { request: [], response: [] };
  const out = { request: decodeOps(m.objects('request_mutations')), response: decodeOps(m.objects('response_mutations')) };
  // query_parameter_mutations and the trailer mutations: reported by finish() as not supported.
  m.finish();
  return out;
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
    const r = ObjectReader.of(cfg.config, path, diag)!; // the chain builder hands over an object
    const own = decodeMutations(r);
    // Default: the filter-level list runs after the route's, so it wins; the flag flips that.
    const routeLast = r.bool('most_specific_header_mutations_wins', false);
    r.finish();
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
    const r = ObjectReader.of(config, path, diag)!;
    const mutations = decodeMutations(r);
    r.finish();
    return { mutations };
  },
});
