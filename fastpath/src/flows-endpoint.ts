/**
 * GET /flows on the admin server: live flow records as newline-delimited JSON, for
 * someone debugging a pod (`curl -N 'localhost:15000/flows?outcome=refused,timeout'`).
 * Filters: see parseFlowFilter; `limit=N` ends the response after N records. A client
 * that reads slower than the pod makes connections loses records, counted in a
 * `{"dropped":n}` line, rather than growing the proxy's memory.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastPath } from './fastpath.js';
import { matchesFilter, parseFlowFilter } from './observe.js';

/** Bytes buffered for one slow client before records are dropped. */
export const FLOWS_MAX_BUFFERED = 1 << 20;

export function serveFlows(fp: FastPath, req: IncomingMessage, res: ServerResponse, url: URL): void {
  const params = new URLSearchParams(url.searchParams);
  let limit = Infinity;
  const rawLimit = params.get('limit');
  params.delete('limit');
  if (rawLimit !== null) {
    limit = Number(rawLimit);
    if (!Number.isInteger(limit) || limit < 1) return text(res, 400, 'limit must be a positive integer\n');
  }
  const parsed = parseFlowFilter(params);
  if (!parsed.ok) return text(res, 400, `${parsed.error}\n`);
  let sent = 0;
  let dropped = 0;
  let off: (() => void) | undefined;
  const stop = (): void => {
    off?.();
    off = undefined;
  };
  off = fp.subscribeFlows((r) => {
    if (!matchesFilter(r, parsed.filter)) return;
    if (res.writableLength > FLOWS_MAX_BUFFERED) {
      dropped++;
      return;
    }
    if (dropped > 0) {
      res.write(`{"dropped":${dropped}}\n`);
      dropped = 0;
    }
    res.write(JSON.stringify(r) + '\n');
    if (++sent >= limit) {
      stop();
      res.end();
    }
  });
  if (!off) {
    const st = fp.status();
    return text(res, 503, `flow observation is off: ${st.active ? 'no observe section with events: true in pilotfish.fastpath' : st.reason ?? 'fast path inactive'}\n`);
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache, max-age=0', 'x-content-type-options': 'nosniff' });
  res.flushHeaders();
  req.on('close', stop);
  res.on('close', stop);
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=UTF-8', 'cache-control': 'no-cache, max-age=0' });
  res.end(body);
}

/** The admin registration: one route, kept out of the admin server itself. */
export function flowsAdminRoute(fp: FastPath): { path: string; help: string; handler: (req: IncomingMessage, res: ServerResponse, url: URL) => void } {
  return {
    path: '/flows',
    help: 'live connections of the pod seen from the kernel, NDJSON (?service=,outcome=,direction=,event=,via=,protocol=,pid=,comm=,destination=,limit=)',
    handler: (req, res, url) => serveFlows(fp, req, res, url),
  };
}
