/** `log_format.json_format`: a struct whose string leaves are format strings. */
import type { LogContext } from '../types.js';
import { jsonValue, parseFormat, type CompiledFormat } from './format.js';

type Node =
  | { readonly kind: 'const'; readonly value: unknown }
  | { readonly kind: 'format'; readonly format: CompiledFormat }
  | { readonly kind: 'object'; readonly entries: readonly (readonly [string, Node])[] };

export interface CompiledJsonFormat {
  render(ctx: LogContext): string;
}

function compileNode(v: unknown, path: string, errors: string[]): Node {
  if (typeof v === 'string') {
    const r = parseFormat(v);
    if (!r.ok) {
      errors.push(`${path}: ${r.error}`);
      return { kind: 'const', value: v };
    }
    return { kind: 'format', format: r.format };
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    return { kind: 'object', entries: Object.entries(v).map(([k, x]) => [k, compileNode(x, `${path}.${k}`, errors)] as const) };
  }
  return { kind: 'const', value: v };
}

function evaluate(n: Node, ctx: LogContext): unknown {
  switch (n.kind) {
    case 'const':
      return n.value;
    case 'format':
      return n.format.single ? jsonValue(n.format.single, ctx) : n.format.render(ctx);
    case 'object': {
      const o: Record<string, unknown> = {};
      for (const [k, child] of n.entries) o[k] = evaluate(child, ctx);
      return o;
    }
  }
}

export function compileJsonFormat(struct: unknown, path: string): { format?: CompiledJsonFormat; errors: string[] } {
  const errors: string[] = [];
  if (struct === null || typeof struct !== 'object' || Array.isArray(struct)) return { errors: [`${path}: expected a mapping of field names to format strings`] };
  const root = compileNode(struct, path, errors);
  if (errors.length > 0) return { errors };
  return { format: { render: (ctx) => `${JSON.stringify(evaluate(root, ctx))}\n` }, errors };
}
