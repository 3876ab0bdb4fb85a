// The raw floors' upstream side (raw-h1.mjs, raw-h2.mjs): keep-alive net.Sockets to the
// origin, one per in-flight request, each response found by its header block and
// Content-Length (no chunked bodies), and the writes optionally batched per turn.
import net from 'node:net';

const CRLF2 = Buffer.from('\r\n\r\n');

export function contentLength(head) {
  const s = head.toString('latin1').toLowerCase();
  const i = s.indexOf('\r\ncontent-length:');
  if (i < 0) return 0;
  return parseInt(s.slice(i + 17, s.indexOf('\r\n', i + 17)), 10) || 0;
}

/** Length of the first whole message (head + Content-Length body) in `buf`, or -1. */
export function messageLength(buf) {
  const end = buf.indexOf(CRLF2);
  if (end < 0) return -1;
  const total = end + 4 + contentLength(buf.subarray(0, end));
  return buf.length < total ? -1 : total;
}

/**
 * `send(socket, bytes)`: with `batchWrites` every write of one event-loop turn is held
 * (the socket corked) until the turn's I/O callbacks are done (setImmediate uncorks).
 */
export function writer(batchWrites) {
  const corked = [];
  let flushScheduled = false;
  const flush = () => {
    flushScheduled = false;
    for (const s of corked) s.uncork();
    corked.length = 0;
  };
  return (s, buf) => {
    if (batchWrites) {
      if (s.writableCorked === 0) {
        s.cork();
        corked.push(s);
      }
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
    }
    s.write(buf);
  };
}

/** An idle socket to the origin, or a new one; set `onResponse(message | null)` before writing. */
export function upstreamPool(upstreamPort) {
  const idle = [];
  return function getUpstream() {
    const u = idle.pop();
    if (u) return u;
    const s = net.connect({ port: upstreamPort, host: '127.0.0.1', noDelay: true });
    s.buf = null;
    s.onResponse = null;
    s.on('data', (d) => {
      s.buf = s.buf ? Buffer.concat([s.buf, d]) : d;
      const total = messageLength(s.buf);
      if (total < 0) return;
      const msg = s.buf.length === total ? s.buf : s.buf.subarray(0, total);
      s.buf = null;
      const cb = s.onResponse;
      s.onResponse = null;
      idle.push(s);
      cb(msg);
    });
    s.on('error', () => {});
    s.on('close', () => {
      const i = idle.indexOf(s);
      if (i >= 0) idle.splice(i, 1);
      if (s.onResponse) s.onResponse(null);
    });
    return s;
  };
}
