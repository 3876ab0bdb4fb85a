import * as http2 from 'node:http2';
import { startProxyYaml, type Scope } from '../helpers.js';
import type { Http2Path } from '../../src/http2/streams.js';

/**
 * The HTTP/2 downstream variants a test runs on: the core stream API (default) with
 * pilotfish's own upstream pools (the default, PILOTFISH_HTTP1=raw) or with undici
 * (PILOTFISH_HTTP1=node), and node's compat API (PILOTFISH_HTTP2=node, with undici), kept
 * as the escape hatch.
 */
export interface H2Variant {
  readonly name: string;
  readonly http2: Http2Path;
  readonly http1: 'node' | 'raw';
}

export const H2_VARIANTS: readonly H2Variant[] = [
  { name: 'core API, undici upstream', http2: 'core', http1: 'node' },
  { name: 'core API, pilotfish upstream pools', http2: 'core', http1: 'raw' },
  { name: 'compat API', http2: 'node', http1: 'node' },
];

/** startProxyYaml with the variant's switches set while the chains are built. */
export async function startProxyH2(v: H2Variant, t: Scope, yaml: string): ReturnType<typeof startProxyYaml> {
  const before = { h1: process.env.PILOTFISH_HTTP1, h2: process.env.PILOTFISH_HTTP2 };
  process.env.PILOTFISH_HTTP1 = v.http1;
  process.env.PILOTFISH_HTTP2 = v.http2;
  try {
    return await startProxyYaml(t, yaml);
  } finally {
    if (before.h1 === undefined) delete process.env.PILOTFISH_HTTP1;
    else process.env.PILOTFISH_HTTP1 = before.h1;
    if (before.h2 === undefined) delete process.env.PILOTFISH_HTTP2;
    else process.env.PILOTFISH_HTTP2 = before.h2;
  }
}

export interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders | undefined;
  rstCode: number;
}

/** An h2c session to a port, closed at teardown. */
export function h2c(t: Scope, port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  t.teardown(() => session.destroy());
  return session;
}

/** One request on a session, read to the end (or to the stream's reset). */
export function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer | string): Promise<H2Response> {
  return new Promise((resolve) => {
    const s = session.request(headers, { endStream: body === undefined });
    s.on('error', () => undefined);
    const out: H2Response = { status: 0, headers: {}, body: Buffer.alloc(0), trailers: undefined, rstCode: 0 };
    const chunks: Buffer[] = [];
    s.on('response', (h) => {
      out.status = Number(h[':status']);
      out.headers = h;
    });
    s.on('trailers', (tr) => (out.trailers = tr));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => {
      out.body = Buffer.concat(chunks);
      out.rstCode = s.rstCode ?? 0;
      resolve(out);
    });
    if (body !== undefined) s.end(body);
  });
}
