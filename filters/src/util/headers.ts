import { ObjectReader, type Diagnostics } from '../../../config/src/index.js';
import { decodeHeaderValueOption as decodeConfigHeaderValueOption } from '../../../config/src/index.js';
import type { HeaderMap } from '../api.js';
import type { StringTest } from './matchers.js';

export type AppendAction = 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';

export type HeaderOp =
  | { readonly kind: 'remove'; readonly name: string }
  | { readonly kind: 'remove_on_match'; readonly test: StringTest }
  | { readonly kind: 'append'; readonly name: string; readonly value: string; readonly action: AppendAction; readonly keepEmpty: boolean };

/** Pseudo-headers and host are the proxy's business; Envoy's mutation rules refuse them too. */
export function mutableHeaderName(name: string): boolean {
  return !name.startsWith(':') && name !== 'host';
}

/**
 * envoy.config.core.v3.HeaderValueOption, by config/'s decoder (header name and value checks,
 * append_action by name in any case or by number, the deprecated `append`), plus the filters' rules:
 * keep_empty_value, and no pseudo-headers or host.
 */
export function decodeHeaderValueOption(v: unknown, diag: Diagnostics, path: string): HeaderOp | undefined {
  const r = ObjectReader.of(v, path, diag);
  return r ? readHeaderValueOption(r) : undefined;
}

export function readHeaderValueOption(r: ObjectReader): HeaderOp | undefined {
  const before = r.diag.errors.length;
  const keepEmpty = r.bool('keep_empty_value', false); // read before config's decoder finishes the object
  const h = decodeConfigHeaderValueOption(r);
  if (!h || r.diag.errors.length > before) return undefined;
  if (!mutableHeaderName(h.key)) {
    r.diag.error(`${r.child('header')}.key`, `may not set ${h.key}`);
    return undefined;
  }
  return { kind: 'append', name: h.key, value: h.value, action: h.appendAction, keepEmpty };
}

export function applyHeaderOps(ops: readonly HeaderOp[], headers: HeaderMap): void {
  for (const op of ops) {
    switch (op.kind) {
      case 'remove':
        delete headers[op.name];
        break;
      case 'remove_on_match':
        for (const k of Object.keys(headers)) if (op.test(k)) delete headers[k];
        break;
      case 'append': {
        if (op.value === '' && !op.keepEmpty) break;
        const cur = headers[op.name];
        const present = cur !== undefined;
        switch (op.action) {
          case 'APPEND_IF_EXISTS_OR_ADD':
            headers[op.name] = !present ? op.value : Array.isArray(cur) ? [...cur, op.value] : [cur, op.value];
            break;
          case 'ADD_IF_ABSENT':
            if (!present) headers[op.name] = op.value;
            break;
          case 'OVERWRITE_IF_EXISTS_OR_ADD':
            headers[op.name] = op.value;
            break;
          case 'OVERWRITE_IF_EXISTS':
            if (present) headers[op.name] = op.value;
            break;
        }
        break;
      }
    }
  }
}

/** Applies ops to a LocalReply's flat header record. */
export function applyHeaderOpsToRecord(ops: readonly HeaderOp[], rec: Record<string, string>): void {
  const m: HeaderMap = { ...rec };
  applyHeaderOps(ops, m);
  for (const k of Object.keys(rec)) delete rec[k];
  for (const [k, v] of Object.entries(m)) if (v !== undefined) rec[k] = Array.isArray(v) ? v.join(', ') : v;
}
