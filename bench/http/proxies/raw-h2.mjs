// EXPERIMENT, not a proxy anyone should run: the floor for h2c-to-HTTP/1.1 proxying in
// Node — what node:http2 (core stream API, no compat layer) costs with nothing of a proxy
// around it. Each stream's headers become an HTTP/1.1 request head on a raw keep-alive
// upstream socket (raw-upstream.mjs); the response's status and headers (hop-by-hop
// ones dropped) are answered with respond(), its Content-Length body with end().
// Request bodies are not forwarded (the benchmark sends GETs). Started by raw-h1.mjs
// with --h2-port, so the one process serves both floors as pilotfish serves both codecs.
import http2 from 'node:http2';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

function responseHeaders(head) {
  const lines = head.toString('latin1').split('\r\n');
  const out = { ':status': Number(lines[0].slice(9, 12)) };
  for (let i = 1; i < lines.length; i++) {
    const c = lines[i].indexOf(':');
    if (c <= 0) continue;
    const name = lines[i].slice(0, c).toLowerCase();
    if (!HOP_BY_HOP.has(name)) out[name] = lines[i].slice(c + 1).trim();
  }
  return out;
}

export function serveH2c(port, getUpstream, send) {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    let head = `${headers[':method']} ${headers[':path']} HTTP/1.1\r\nhost: ${headers[':authority']}\r\n`;
    for (const name in headers) {
      if (name[0] !== ':') head += `${name}: ${headers[name]}\r\n`;
    }
    const u = getUpstream();
    u.onResponse = (res) => {
      // The client may have reset the stream (or gone) while the origin answered.
      if (stream.closed || stream.destroyed) return;
      if (!res) { stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR); return; }
      const end = res.indexOf('\r\n\r\n');
      stream.respond(responseHeaders(res.subarray(0, end)));
      stream.end(res.subarray(end + 4));
    };
    send(u, Buffer.from(`${head}\r\n`, 'latin1'));
  });
  server.listen(port, '127.0.0.1');
}
