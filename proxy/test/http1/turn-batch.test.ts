/**
 * The raw path's send batching (proxy/src/http1/turn-batch.ts) on real loopback sockets:
 * at low load a send leaves at once; after a busy turn the sends of a turn are held
 * until the turn's check phase and then all leave, in order, nothing lost.
 */
import t from 'tap';
import * as net from 'node:net';
import { once } from 'node:events';
import { holdUntilTurnEnds } from '../../src/http1/turn-batch.js';
import type { Scope } from '../helpers.js';

async function pair(t: Scope): Promise<{ client: net.Socket; received: () => string }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [peer] = (await once(server, 'connection')) as [net.Socket];
  await once(client, 'connect');
  let got = '';
  peer.setEncoding('latin1');
  peer.on('data', (d: string) => (got += d));
  t.teardown(() => {
    client.destroy();
    peer.destroy();
    server.close();
  });
  return { client, received: () => got };
}

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

t.test('a lone send leaves at once; after a busy turn a turn\'s sends wait for its end, then all leave in order', async (t) => {
  const a = await pair(t);
  const b = await pair(t);
  await nextTurn();
  await nextTurn(); // two quiet turns: whatever ran before counted as a turn of at most one send

  // Low load: one send in the turn is not corked.
  holdUntilTurnEnds(a.client);
  t.equal(a.client.writableCorked, 0, 'the only send of a quiet turn is not held');
  a.client.write('lone');
  await nextTurn();

  // A busy turn: three sends (after the first, the rest are held).
  for (const [s, text] of [[a.client, 'x1'], [b.client, 'y1'], [a.client, 'x2']] as const) {
    holdUntilTurnEnds(s);
    s.write(text);
  }
  await nextTurn();
  // The next turn follows a busy one: every send is held until the turn ends.
  holdUntilTurnEnds(a.client);
  a.client.write('A');
  holdUntilTurnEnds(b.client);
  b.client.write('B');
  t.equal(a.client.writableCorked, 1, 'held until the end of the turn');
  t.equal(b.client.writableCorked, 1);
  t.ok(a.client.writableLength > 0, 'the bytes wait in the socket, not in the kernel');
  await nextTurn();
  t.equal(a.client.writableCorked, 0, 'released in the turn\'s check phase');
  t.equal(b.client.writableCorked, 0);
  const deadline = Date.now() + 2000;
  while ((a.received() !== 'lonex1x2A' || b.received() !== 'y1B') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.equal(a.received(), 'lonex1x2A', 'everything arrived, in order');
  t.equal(b.received(), 'y1B');
});

t.test('end() on a held socket sends what was held', async (t) => {
  const a = await pair(t);
  const b = await pair(t);
  // Make the previous turn busy so that holds apply.
  holdUntilTurnEnds(a.client);
  a.client.write('1');
  holdUntilTurnEnds(b.client);
  b.client.write('2');
  await nextTurn();
  holdUntilTurnEnds(a.client);
  a.client.write('held');
  a.client.end();
  await nextTurn();
  const deadline = Date.now() + 2000;
  while (a.received() !== '1held' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.equal(a.received(), '1held');
});
