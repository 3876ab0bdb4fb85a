import type * as net from 'node:net';

/**
 * Writes of one event-loop turn, held until the turn's I/O callbacks are done.
 *
 * Under load one turn reads many sockets (epoll hands over every ready one), and each read
 * ends in a send: to the upstream for a request, to the client for a response. Sent at
 * once, every send can wake its peer (on another core: an IPI, on a VM a VM exit) while
 * the next send of the same turn is still being built, so the peer wakes once per send.
 * Held (the socket corked) until the check phase of the same loop iteration
 * (setImmediate), the turn's sends leave back to back and the peer wakes once per turn.
 * A socket gets one send per turn: a head and a small body are already one buffer, and
 * several writes to a corked socket leave as one writev.
 *
 * Nothing waits longer than the rest of the current iteration: the check phase follows
 * the poll phase that ran the I/O callbacks, before the loop blocks again. Back-pressure
 * is unchanged (a corked socket's write() still returns false above its high-water mark),
 * and end() uncorks a socket on its own.
 */
let held: net.Socket[] = [];
/** The other list: a flush releases one while new holds gather in the other. */
let spare: net.Socket[] = [];
/** Sends asked for in this turn, and in the last turn that had any. */
let sendsThisTurn = 0;
let sendsLastTurn = 0;

function releaseHeld(): void {
  sendsLastTurn = sendsThisTurn;
  sendsThisTurn = 0;
  // A write made while releasing (a 'drain' handler) holds its socket for the next flush.
  const batch = held;
  held = spare;
  spare = batch;
  for (let i = 0; i < batch.length; i++) {
    const s = batch[i]!;
    // end() uncorks on its own; a socket held twice in one turn is uncorked once.
    if (s.writableCorked > 0) s.uncork();
  }
  batch.length = 0;
}

/**
 * Corks `socket` (once) until the end of this event-loop turn — unless the last turn
 * sent at most once: then the load is low, a turn holds one request, there is nothing
 * to batch it with, and its first send leaves at once (holding it would only add the
 * rest of the turn's work, the access log and stats of the request, to its latency).
 */
export function holdUntilTurnEnds(socket: net.Socket): void {
  if (sendsThisTurn++ === 0) {
    // The turn's end: releaseHeld runs in its check phase (and starts the next count).
    setImmediate(releaseHeld);
    if (sendsLastTurn <= 1) return;
  }
  if (socket.writableCorked === 0) {
    socket.cork();
    held.push(socket);
  }
}
