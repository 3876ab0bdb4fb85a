/**
 * The part of CEL that Istio's metric `dimensions` use in practice: attribute paths
 * (`request.host`, `request.headers['x-user']`, `node.metadata['MESH_ID']`,
 * `upstream_peer.app`), string literals, and `string(...)`. An expression outside this
 * subset is a configuration warning (Istio logs it and leaves the tag out), never a
 * request-time error; a path that has no value on a request reports "unknown", as Istio's
 * failed evaluations do.
 */

/** What an expression can look at for one request or connection. */
export interface ExprContext {
  attribute(path: readonly string[]): string | number | boolean | undefined;
}

export type CompiledExpr = (ctx: ExprContext) => string;

export type CompileResult = { readonly ok: true; readonly eval: CompiledExpr } | { readonly ok: false; readonly reason: string };

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*/;
const ROOTS = new Set(['request', 'response', 'source', 'destination', 'connection', 'upstream', 'node', 'xds', 'filter_state', 'upstream_peer', 'downstream_peer']);

export function compileExpr(text: string): CompileResult {
  const src = text.trim();
  if (src === '') return { ok: false, reason: 'empty expression' };
  const lit = stringLiteral(src);
  if (lit !== undefined) return { ok: true, eval: () => lit };
  const call = /^string\((.*)\)$/s.exec(src);
  if (call) return compileExpr(call[1]!);
  const path = parsePath(src);
  if (typeof path === 'string') return { ok: false, reason: path };
  if (!ROOTS.has(path[0]!)) return { ok: false, reason: `unknown attribute "${path[0]}"` };
  return {
    ok: true,
    eval: (ctx) => {
      const v = ctx.attribute(path);
      return v === undefined ? 'unknown' : String(v);
    },
  };
}

function stringLiteral(s: string): string | undefined {
  const m = /^'([^'\\]*)'$|^"([^"\\]*)"$/.exec(s);
  return m ? (m[1] ?? m[2]) : undefined;
}

/** `a.b['c'].d` -> ['a', 'b', 'c', 'd'], or the reason it is not a plain path. */
function parsePath(s: string): string[] | string {
  const out: string[] = [];
  let rest = s;
  const first = IDENT.exec(rest);
  if (!first) return `unsupported expression "${s}"`;
  out.push(first[0]);
  rest = rest.slice(first[0].length);
  while (rest !== '') {
    if (rest.startsWith('.')) {
      const id = IDENT.exec(rest.slice(1));
      if (!id) return `unsupported expression "${s}"`;
      out.push(id[0]);
      rest = rest.slice(1 + id[0].length);
    } else if (rest.startsWith('[')) {
      const m = /^\[\s*('([^'\\]*)'|"([^"\\]*)")\s*\]/.exec(rest);
      if (!m) return `unsupported expression "${s}"`;
      out.push(m[2] ?? m[3]!);
      rest = rest.slice(m[0].length);
    } else return `unsupported expression "${s}"`;
  }
  return out;
}
