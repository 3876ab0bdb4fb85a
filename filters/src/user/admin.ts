import { formatProblem } from '../../../config/src/index.js';
import { isObj } from '../util/fields.js';
import type { UserFilterManager } from './manager.js';

export interface AdminAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

const json = (status: number, v: unknown): AdminAnswer => ({ status, contentType: 'application/json', body: `${JSON.stringify(v, null, 2)}\n` });
const text = (status: number, s: string): AdminAnswer => ({ status, contentType: 'text/plain', body: `${s}\n` });

/**
 * The admin side of hot-loaded filters, for the proxy's admin server to mount:
 *   GET  /filters                          every user filter's versions and events
 *   POST /filters/apply?name=NAME          body: the module config (TypedStruct value) as JSON
 *                                          200 {name, version, state} | 400 rejection text (NACK)
 *   POST /filters/rollback?name=NAME       back to the previous good version
 * Answers only; no sockets here.
 */
export async function handleUserFilterAdmin(
  manager: UserFilterManager, method: string, pathname: string, query: URLSearchParams, body: string,
): Promise<AdminAnswer> {
  if (pathname === '/filters' || pathname === '/filters/') {
    if (method !== 'GET') return text(405, 'use GET');
    return json(200, manager.describe());
  }
  const name = query.get('name');
  if (method !== 'POST') return text(405, 'This endpoint requires POST.');
  if (!name) return text(400, 'missing ?name=FILTER_NAME');
  if (pathname === '/filters/apply') {
    let config: unknown;
    try {
      config = JSON.parse(body);
    } catch (err) {
      return text(400, `body is not JSON: ${(err as Error).message}`);
    }
    if (!isObj(config)) return text(400, 'body must be a JSON object (the module config)');
    const r = await manager.apply(name, { config }, `filters.${name}`);
    return r.ok ? json(200, r.value) : text(400, r.errors.map(formatProblem).join('\n'));
  }
  if (pathname === '/filters/rollback') {
    return manager.rollback(name, 'admin request') ? json(200, manager.describe()) : text(409, `no previous good version of ${name} to roll back to`);
  }
  return text(404, 'unknown filters admin path');
}
