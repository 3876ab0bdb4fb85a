import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { HttpFilterChain, LocalReply, StreamInfo } from '../../../filters/src/index.js';
import { firstValue, type HeaderMap } from './headers.js';

/**
 * The request body on its way upstream: whether there is one, buffered for retries,
 * through the filters' body phase, or streamed. Every path counts the bytes read from
 * the downstream into `bytesReceived` (Envoy's %BYTES_RECEIVED%).
 */

type Req = IncomingMessage | Http2ServerRequest;

/** Requests with bodies up to this size are buffered when a retry policy could replay them. */
export const RETRY_BUFFER_LIMIT = 64 * 1024;

interface BodyCounter {
  bytesReceived: number;
}

export function requestHasBody(req: Req, isH2: boolean): boolean {
  if (isH2) {
    const st = (req as Http2ServerRequest).stream;
    return !(st as unknown as { endAfterHeaders: boolean }).endAfterHeaders;
  }
  const h = (req as IncomingMessage).headers;
  // Hop-by-hop headers are already cleared from the view, so read Node's own parse result.
  const raw = (req as IncomingMessage).rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.length === 17 && k.toLowerCase() === 'transfer-encoding') return true;
  }
  const cl = h['content-length'];
  return cl !== undefined && cl !== '0';
}

/** Whether a retry buffer can hold this body: known to fit, or of unknown length (chunked; found out while reading). */
export function fitsRetryBuffer(headers: HeaderMap): boolean {
  const cl = headers['content-length'];
  return cl === undefined || Number(firstValue(cl)) <= RETRY_BUFFER_LIMIT;
}

/** The body streamed to undici as it arrives; paused first, so the counting listener cannot start the flow before undici reads. */
export function streamedBody(req: Req, counter: BodyCounter): NodeJS.ReadableStream {
  req.pause();
  req.on('data', (c: Buffer) => { counter.bytesReceived += c.length; });
  return req as unknown as NodeJS.ReadableStream;
}

/**
 * Buffers a request body so that retries can replay it, like Envoy's retry buffer. A
 * body that outgrows the limit is streamed on (buffered part first) and the request
 * simply loses its retries. A complete body is sent with its length, never chunked.
 */
export function bufferForRetry(req: Req, counter: BodyCounter, headers: HeaderMap, then: (body: Buffer | NodeJS.ReadableStream) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (c: Buffer) => {
    chunks.push(c);
    size += c.length;
    counter.bytesReceived += c.length;
    if (size > RETRY_BUFFER_LIMIT) {
      req.off('data', onData);
      req.off('end', onEnd);
      req.pause();
      const rest = new PassThrough();
      for (const b of chunks) rest.write(b);
      req.on('data', (b: Buffer) => { counter.bytesReceived += b.length; });
      req.pipe(rest);
      req.resume();
      then(rest);
    }
  };
  const onEnd = () => {
    const body = Buffer.concat(chunks);
    headers['content-length'] = String(body.length);
    then(body);
  };
  req.on('data', onData);
  req.once('end', onEnd);
}

/**
 * The filters' body phase: each chunk passes decodeData in order (a filter may replace or
 * drop it); a filter's local reply ends it (`onReply`), else the whole result goes on.
 */
export function readThroughFilters(
  req: Req, chain: HttpFilterChain, info: StreamInfo & BodyCounter, headers: HeaderMap,
  onReply: (r: LocalReply) => void, then: (body: Buffer) => void,
): void {
  const out: Uint8Array[] = [];
  let failed = false;
  const feed = async (chunk: Uint8Array, end: boolean) => {
    const r = await chain.decodeData(chunk, end, info);
    if (r === undefined) out.push(chunk);
    else if ('status' in r) {
      failed = true;
      onReply(r);
    } else if (r.data) out.push(r.data);
  };
  let queue: Promise<void> = Promise.resolve();
  req.on('data', (c: Buffer) => {
    info.bytesReceived += c.length;
    queue = queue.then(() => (failed ? undefined : feed(c, false)));
  });
  req.once('end', () => {
    queue = queue.then(() => (failed ? undefined : feed(new Uint8Array(0), true))).then(() => {
      if (failed) return;
      const body = Buffer.concat(out);
      headers['content-length'] = String(body.length);
      then(body);
    });
  });
}
