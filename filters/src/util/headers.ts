import type { Diagnostics } from '../../../config/src/index.js';
import type { HeaderMap } from '../api.js';
import { bool, isObj, obj, raw, str } from './fields.js';
import type { StringTest } from './matchers.js';

export type AppendAction = 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';
const ACTIONS: readonly AppendAction[] = ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS'];

export type HeaderOp =
  | { readonly kind: 'remove'; readonly name: string }
  | { readonly kind: 'remove_on_match'; readonly test: StringTest }
  | { readonly kind: 'append'; readonly name: string; readonly value: string; readonly action: AppendAction; readonly keepEmpty: boolean };

/** Pseudo-headers and host are the proxy's business; Envoy's mutation rules refuse them too. */
export function mutableHeaderName(name: string): boolean {
  return !name.startsWith(':') && name !== 'host';
}

/** envoy.config.core.v3.HeaderValueOption. */
export function decodeHeaderValueOption(v: unknown, diag: Diagnostics, path: string): HeaderOp | undefined {
  if (!isObj(v)) {
    diag.error(path, 'must be a HeaderValueOption');
    return undefined;
  }
  const header = obj(v, 'header', diag, path);
  const name = header && str(header, 'key', diag, `${path}.header`)?.toLowerCase();
  if (!header || !name) {
    diag.error(`${path}.header.key`, 'is required');
    return undefined;
  }
  if (!mutableHeaderName(name)) {
    diag.error(`${path}.header.key`, `may not set ${name}`);
    return undefined;
  }
  const value = str(header, 'value', diag, `${path}.header`) ?? '';
  // The deprecated `append: false` meant overwrite.
  const legacy = raw(v, 'append');
  const legacyAction = isObj(legacy) ? legacy.value : legacy;
  const a = raw(v, 'append_action') ?? (legacyAction === false ? 'OVERWRITE_IF_EXISTS_OR_ADD' : 'APPEND_IF_EXISTS_OR_ADD');
  if (!ACTIONS.includes(a as AppendAction)) {
    diag.error(`${path}.append_action`, `unknown append_action ${JSON.stringify(a)}`);
    return undefined;
  }
  return { kind: 'append', name, value, action: a as AppendAction, keepEmpty: bool(v, 'keep_empty_value', diag, path) };
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
