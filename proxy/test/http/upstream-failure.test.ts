import t from 'tap';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { Failures, failureFromError } from '../../src/http/upstream-failure.js';
import { refusedHost } from '../helpers.js';

/** Real undici errors from real sockets, mapped once. */
async function errorFrom(url: string): Promise<unknown> {
  try {
    const r = await request(url, { headersTimeout: 2000, bodyTimeout: 2000 });
    await r.body.text();
  } catch (e) {
    return e;
  }
  throw new Error('expected the request to fail');
}

async function rawServer(t: { teardown(fn: () => unknown): void }, onConn: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer(onConn);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  return (srv.address() as AddressInfo).port;
}

t.test('undici errors map to one failure each', async (t) => {
  const refused = await refusedHost(t);
  t.equal(failureFromError(await errorFrom(`http://${refused.address}:${refused.port}/`)).code, 'connect_failure', 'refused connect');
  const garbage = await rawServer(t, (s) => s.once('data', () => s.end('HTTP/1.1 2OO nope\r\n\r\n')));
  t.equal(failureFromError(await errorFrom(`http://127.0.0.1:${garbage}/`)).code, 'protocol_error', 'a response llhttp refuses');
  const reset = await rawServer(t, (s) => s.once('data', () => s.destroy()));
  const f = failureFromError(await errorFrom(`http://127.0.0.1:${reset}/`));
  t.equal(f.code, 'connection_termination', 'closed after the request was sent: a reset, not a connect failure');
  t.equal(f.responseFlag, 'UC');
  t.equal(f.source, 'upstream');
  t.equal(failureFromError(new Error('no code')), Failures.connectionTermination, 'unknown errors are resets');
  t.equal(failureFromError(undefined), Failures.connectionTermination, 'even a non-error');
});

t.test('the catalogue agrees with itself', async (t) => {
  for (const [name, f] of Object.entries(Failures)) {
    t.ok(Object.isFrozen(f), `${name} is shared, so frozen`);
    t.equal(f.details, f.reply.details, `${name}: details are the reply's`);
    if (f.source === 'upstream') t.ok(f.retryable && f.outlier !== undefined, `${name}: an upstream failure is retryable and reported to outlier detection`);
  }
  t.notOk(Failures.overflow.retryable, 'our own limits are not retried');
  t.equal(Failures.perTryTimeout.reply.status, 504);
});
