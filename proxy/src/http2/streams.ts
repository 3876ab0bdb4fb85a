import * as http2 from 'node:http2';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { ConnectionManager } from '../http/connection-manager.js';
import type { HeaderMap } from '../http/headers.js';
import { rawDispatcherForH2 } from '../http1/upstream.js';
import { H2Request, H2Response, type UpstreamDispatcherChoice } from './messages.js';
import { requestHeaderMap } from './request-headers.js';
import { sessionState } from './sweep.js';

/**
 * HTTP/2 downstream streams on node's core API: the server's 'stream' event hands each
 * request to the exchange core as an H2Request / H2Response pair (messages.ts). Everything
 * about the connection (SETTINGS, flow control, flood limits, GOAWAY, header limits,
 * malformed frames and pseudo-headers) stays with node's nghttp2 session, exactly as on
 * the compat path; only the per-request objects change.
 */

/** Which objects serve HTTP/2 requests: PILOTFISH_HTTP2=core (default) or node (the compat API, kept as an escape hatch and a benchmark baseline). */
export type Http2Path = 'core' | 'node';

export function http2PathFromEnv(env: NodeJS.ProcessEnv = process.env): Http2Path {
  return env.PILOTFISH_HTTP2 === 'node' ? 'node' : 'core';
}

/**
 * The upstream pool of HTTP/2 downstream requests: pilotfish's own pools (the raw HTTP/1.1
 * pool, the core-API HTTP/2 pool for HTTP/2 clusters and for use_downstream_protocol
 * clusters; undici for pipes, internal addresses and hostnames, inside rawDispatcherForH2)
 * unless PILOTFISH_HTTP1=node selects undici, so one switch decides which code a proxy runs.
 */
export function h2UpstreamFromEnv(env: NodeJS.ProcessEnv = process.env): UpstreamDispatcherChoice | undefined {
  // The raw path is the default; PILOTFISH_HTTP1=node selects undici (the rule of http1/raw-chain.ts's http1PathFromEnv, not imported: raw-chain extends listener.ts's HttpChain, which imports this module).
  return env.PILOTFISH_HTTP1 === 'node' ? undefined : rawDispatcherForH2;
}

const { HTTP2_HEADER_STATUS } = http2.constants;

/** A stream error is reported by 'close' (rstCode); without a listener 'error' would be thrown. */
function ignore(): void {}

/**
 * Serves a server's streams with the chain's current connection manager (looked up per
 * stream, so a listener update takes effect for new requests on open sessions).
 */
export function serveStreams(server: http2.Http2Server, manager: () => ConnectionManager, dispatcher: UpstreamDispatcherChoice | undefined): void {
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
    onStream(manager(), stream, headers as HeaderMap, rawHeaders, dispatcher);
  });
}

function onStream(hcm: ConnectionManager, stream: http2.ServerHttp2Stream, nodeHeaders: HeaderMap, rawHeaders: string[], dispatcher: UpstreamDispatcherChoice | undefined): void {
  stream.on('error', ignore);
  // node emits 'stream' on the next tick: nghttp2 may have reset it since (a body longer
  // than its content-length, a closed session; its 'error' is still to come, hence the
  // listener first). Nothing is left to answer.
  if (stream.destroyed || stream.session === undefined) return;
  const headers = requestHeaderMap(nodeHeaders, rawHeaders);
  const req = new H2Request(stream, headers, rawHeaders, dispatcher);
  const te = headers.te;
  const conn = sessionState(stream.session);
  const res = new H2Response(stream, te !== undefined && (te === 'trailers' || String(te).includes('trailers')), conn);
  req.response = res;
  const expect = headers.expect;
  if (expect !== undefined && req.method !== 'CONNECT') {
    // As node's compat server did: 100-continue is answered at once and the request
    // proceeds, any other expectation is refused with 417. The answered expectation is
    // not forwarded (Envoy's HCM strips it too; undici refuses requests that carry it).
    if (expect === '100-continue') {
      if (!stream.destroyed) stream.additionalHeaders({ [HTTP2_HEADER_STATUS]: 100 });
      headers.expect = undefined;
    } else {
      res.writeHead(417, {});
      res.end();
      return;
    }
  }
  hcm.handle(req as unknown as Http2ServerRequest, res as unknown as Http2ServerResponse);
}
