import type { HeaderMutations } from '../../../../config/src/index.js';
import { applyHeaderOptions, type HeaderMap } from '../headers.js';

/**
 * A route's header mutations, applied as Envoy does: the list holds route, virtual host,
 * route table; they are applied from the last to the first, so the most specific level
 * writes last and wins.
 */
export function applyRequestMutations(headers: HeaderMap, mutations: readonly HeaderMutations[]): void {
  for (let i = mutations.length - 1; i >= 0; i--) {
    const m = mutations[i]!;
    if (m.requestHeadersToAdd.length > 0 || m.requestHeadersToRemove.length > 0) applyHeaderOptions(headers, m.requestHeadersToAdd, m.requestHeadersToRemove);
  }
}

/** The response side of applyRequestMutations (upstream answers, local replies, tunnels). */
export function applyResponseMutations(headers: HeaderMap, mutations: readonly HeaderMutations[]): void {
  for (let i = mutations.length - 1; i >= 0; i--) {
    const m = mutations[i]!;
    if (m.responseHeadersToAdd.length > 0 || m.responseHeadersToRemove.length > 0) applyHeaderOptions(headers, m.responseHeadersToAdd, m.responseHeadersToRemove);
  }
}
