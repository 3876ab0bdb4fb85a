/**
 * Real sockets for e2e tests: tiny upstreams, one-shot HTTP requests that never throw,
 * and port probes. Everything a helper opens is closed in the test's teardown.
 */
import * as http from 'node:http';
import * as net from 'node:net';

/** The part of a tap Test the helpers need. */
export interface Scope {
  teardown(fn: () => unknown): void;
}

/** An HTTP/1.1 server on 127.0.0.1 that answers every request with its own name; returns its port. */
export async function namedUpstream(t: Scope, name: string): Promise<number> {
  const server = http.createServer((_req, res) => res.end(name));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return (server.address() as net.AddressInfo).port;
}

export interface HttpAnswer {
  /** 0 when the request failed (the body then holds the error message). */
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/**
 * One request to 127.0.0.1:port. Resolves, never rejects: a failed request is status 0,
 * which is what load loops count as a failure.
 */
export function httpGet(
  port: number,
  opts: { readonly path?: string; readonly headers?: http.OutgoingHttpHeaders; readonly agent?: http.Agent | false; readonly timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: opts.path ?? '/', headers: opts.headers, agent: opts.agent ?? false, timeout: opts.timeoutMs ?? 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', (e) => resolve({ status: 0, headers: {}, body: e.message }));
    });
    req.on('error', (e) => resolve({ status: 0, headers: {}, body: e.message }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

/**
 * A port nothing listens on right now. Only for what must be a fixed number (a listener
 * that keeps its port across restarts): another process may take it before it is used.
 */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
