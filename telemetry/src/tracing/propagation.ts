/**
 * Trace context on the wire: W3C traceparent/tracestate (read and written), B3 single
 * and multi header (read only, as Envoy's OpenTelemetry tracer accepts them on input).
 */
import { headerValue, type HeaderMap } from '../types.js';

export interface WireContext {
  readonly traceId: string; // 32 lower-case hex
  readonly spanId: string; // 16 lower-case hex
  /** undefined: the caller made no decision (B3 without a sampling state). */
  readonly sampled: boolean | undefined;
  /** B3 debug flag: sample regardless of rates. */
  readonly debug: boolean;
  readonly traceState: string | undefined;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO32 = '0'.repeat(32);
const ZERO16 = '0'.repeat(16);

export function parseTraceparent(v: string | undefined, traceState?: string): WireContext | undefined {
  if (v === undefined) return undefined;
  const parts = v.trim().toLowerCase().split('-');
  if (parts.length < 4) return undefined;
  const [version, traceId, spanId, flags] = parts as [string, string, string, string];
  // Version ff is invalid; version 00 must have exactly four fields; later versions may add fields.
  if (!/^[0-9a-f]{2}$/.test(version) || version === 'ff' || (version === '00' && parts.length !== 4)) return undefined;
  if (!HEX32.test(traceId) || traceId === ZERO32 || !HEX16.test(spanId) || spanId === ZERO16 || !/^[0-9a-f]{2}$/.test(flags)) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1, debug: false, traceState: traceState || undefined };
}

function b3TraceId(v: string): string | undefined {
  const id = v.trim().toLowerCase();
  if (HEX16.test(id)) return id === ZERO16 ? undefined : ZERO16 + id;
  return HEX32.test(id) && id !== ZERO32 ? id : undefined;
}

function b3Sampled(v: string | undefined): { sampled: boolean | undefined; debug: boolean } {
  switch (v?.trim().toLowerCase()) {
    case '1': case 'true': return { sampled: true, debug: false };
    case '0': case 'false': return { sampled: false, debug: false };
    case 'd': return { sampled: true, debug: true };
    default: return { sampled: undefined, debug: false };
  }
}

export function parseB3(h: HeaderMap): WireContext | undefined {
  const single = headerValue(h, 'b3');
  if (single !== undefined) {
    const [t, s, flag] = single.split('-');
    if (t === undefined || s === undefined) return undefined; // "b3: 0" (deny only) carries no context
    const traceId = b3TraceId(t);
    const spanId = s.trim().toLowerCase();
    if (!traceId || !HEX16.test(spanId) || spanId === ZERO16) return undefined;
    return { traceId, spanId, ...b3Sampled(flag), traceState: undefined };
  }
  const t = headerValue(h, 'x-b3-traceid');
  const s = headerValue(h, 'x-b3-spanid');
  if (t === undefined || s === undefined) return undefined;
  const traceId = b3TraceId(t);
  const spanId = s.trim().toLowerCase();
  if (!traceId || !HEX16.test(spanId) || spanId === ZERO16) return undefined;
  const flags = headerValue(h, 'x-b3-flags');
  const sm = flags === '1' ? { sampled: true, debug: true } : b3Sampled(headerValue(h, 'x-b3-sampled'));
  return { traceId, spanId, ...sm, traceState: undefined };
}

/** W3C first (it is what we emit), B3 as a fallback. */
export function extract(h: HeaderMap): WireContext | undefined {
  return parseTraceparent(headerValue(h, 'traceparent'), headerValue(h, 'tracestate')) ?? parseB3(h);
}

export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

export function inject(h: HeaderMap, traceId: string, spanId: string, sampled: boolean, traceState: string | undefined): void {
  h.traceparent = formatTraceparent(traceId, spanId, sampled);
  if (traceState) h.tracestate = traceState;
  else delete h.tracestate;
}
