import { ObjectReader, type Diagnostics } from '../../../config/src/index.js';
import { FILTER_DISABLED, type DataResult, type HttpFilter, type LocalReply } from '../api.js';
import { registerHttpFilter } from '../registry.js';
import { headerValue, type Obj } from '../util/fields.js';

/**
 * envoy.extensions.filters.http.buffer.v3.Buffer: holds the whole request body (up to
 * max_request_bytes) and releases it at end of stream, so the upstream request starts
 * with a complete body; 413 beyond the limit. Per route: BufferPerRoute {disabled | buffer}.
 */
export const BUFFER_TYPE_URL = 'envoy.extensions.filters.http.buffer.v3.Buffer';
export const BUFFER_PER_ROUTE_TYPE_URL = 'envoy.extensions.filters.http.buffer.v3.BufferPerRoute';

interface BufferConfig {
  readonly maxRequestBytes: number;
}

function decodeBuffer(c: Obj, diag: Diagnostics, path: string): BufferConfig | undefined {
  const r = ObjectReader.of(c, path, diag);
  return r ? decodeBufferReader(r) : undefined;
}

function decodeBufferReader(r: ObjectReader): BufferConfig | undefined {
  const present = r.has('max_request_bytes');
  const max = r.optionalInt('max_request_bytes', 1, 0xffff_ffff);
  r.finish();
  if (!present) r.diag.error(r.child('max_request_bytes'), 'is required');
  return max === undefined ? undefined : { maxRequestBytes: max };
}

const TOO_LARGE: LocalReply = Object.freeze({
  status: 413,
  headers: { 'content-type': 'text/plain' },
  body: 'Payload Too Large',
  details: 'request_payload_too_large',
});

interface Held {
  chunks: Uint8Array[];
  size: number;
}

registerHttpFilter({
  kind: 'buffer',
  typeUrl: BUFFER_TYPE_URL,
  perRouteTypeUrls: [BUFFER_PER_ROUTE_TYPE_URL],
  create(cfg, diag, path, ctx): HttpFilter | undefined {
    const own = decodeBuffer(cfg.config, diag, path);
    if (own === undefined) return undefined;
    const c = ctx.stats.countersFor(cfg.name);
    const held = ctx.streamSlot<Held>();
    const tooLarge = (): LocalReply => {
      c.inc('rq_too_large');
      return { ...TOO_LARGE, headers: { ...TOO_LARGE.headers } };
    };
    return {
      name: cfg.name,
      typeUrl: BUFFER_TYPE_URL,
      failurePolicy: 'FAIL_CLOSED',
      failureStatus: 500,
      wantsRequestBody: true,
      decodeHeaders(req, _info, pr) {
        const b = (pr as BufferConfig | undefined) ?? own;
        // A declared length over the limit is refused before any body arrives.
        const cl = headerValue(req.headers['content-length']);
        if (cl !== undefined && /^\d+$/.test(cl) && Number(cl) > b.maxRequestBytes) return tooLarge();
        return undefined;
      },
      decodeData(chunk, endStream, info, pr): DataResult {
        const b = (pr as BufferConfig | undefined) ?? own;
        let h = held.get(info);
        if (h === undefined) {
          h = { chunks: [], size: 0 };
          held.set(info, h);
        }
        h.size += chunk.byteLength;
        if (h.size > b.maxRequestBytes) {
          held.clear(info);
          return tooLarge();
        }
        if (chunk.byteLength > 0) h.chunks.push(chunk);
        if (!endStream) return { data: null };
        held.clear(info);
        const body = h.chunks.length === 1 ? h.chunks[0]! : Buffer.concat(h.chunks, h.size);
        return { data: body };
      },
      streamComplete(info) {
        held.clear(info);
      },
      describe: () => ({ kind: 'buffer', max_request_bytes: own.maxRequestBytes }),
    };
  },
  decodePerRoute(_t, config, diag, path) {
    const r = ObjectReader.of(config, path, diag);
    if (!r) return undefined;
    const which = r.oneof(['disabled', 'buffer'], false);
    const disabled = which === 'disabled' && r.bool('disabled', false);
    const inner = which === 'buffer' ? r.object('buffer') : undefined;
    r.finish();
    if (disabled) return FILTER_DISABLED;
    if (inner === undefined) {
      diag.error(path, 'BufferPerRoute needs disabled: true or buffer');
      return undefined;
    }
    return decodeBufferReader(inner);
  },
});
