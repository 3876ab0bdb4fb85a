/**
 * The original destination of an intercepted connection: getsockopt(SO_ORIGINAL_DST)
 * through a small N-API addon (proxy/native/original_dst.c), which Node itself lacks.
 *
 * One call serves both interception paths: iptables `REDIRECT` (the kernel answers from
 * conntrack) and pilotfish's eBPF fast path (its cgroup/getsockopt program answers from
 * the `orig_dst` map when conntrack has nothing; the proxy's sockets must be in, or
 * under, the cgroup the fast path is attached to — see fastpath/README.md).
 *
 * The addon is loaded lazily, once; when it is missing (no compiler at install time,
 * not Linux) every read returns undefined and `originalDstAvailability()` says why.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as net from 'node:net';
import { fileURLToPath } from 'node:url';

export interface OriginalDst {
  readonly address: string;
  readonly port: number;
}

interface Addon {
  originalDst(fd: number): { address: string; port: number; family: 4 | 6 } | null;
  socketCookie(fd: number): bigint | null;
}

export type Availability = { readonly ok: true } | { readonly ok: false; readonly reason: string };

// Where `npm run prepare` (proxy/native/build.mjs) leaves the addon. This file runs from
// proxy/src/net/ (tsx) or dist/proxy/src/net/ (compiled); both reach the same build dir.
const CANDIDATES = [
  new URL('../../native/build/', import.meta.url),
  new URL('../../../../proxy/native/build/', import.meta.url),
];

let addon: Addon | undefined;
let availability: Availability | undefined;

function load(): Addon | undefined {
  if (availability) return addon;
  if (process.platform !== 'linux') {
    availability = { ok: false, reason: `SO_ORIGINAL_DST is Linux-only (platform ${process.platform})` };
    return undefined;
  }
  const dir = CANDIDATES.map((u) => fileURLToPath(u)).find((d) => existsSync(`${d}original_dst.node`) || existsSync(`${d}unavailable.txt`));
  if (!dir) {
    availability = { ok: false, reason: 'native addon not built (run `node proxy/native/build.mjs`)' };
    return undefined;
  }
  if (!existsSync(`${dir}original_dst.node`)) {
    const why = readFileSync(`${dir}unavailable.txt`, 'utf8').trim();
    availability = { ok: false, reason: `native addon not built at install: ${why}` };
    return undefined;
  }
  try {
    addon = createRequire(import.meta.url)(`${dir}original_dst.node`) as Addon;
    availability = { ok: true };
  } catch (err) {
    availability = { ok: false, reason: `native addon failed to load: ${(err as Error).message.split('\n')[0]}` };
  }
  return addon;
}

/** Whether SO_ORIGINAL_DST can be read in this process, and if not, a one-line reason. */
export function originalDstAvailability(): Availability {
  load();
  return availability!;
}

/**
 * The kernel fd behind a net.Socket. `_handle` is libuv's TCPWrap; on Unix its `fd`
 * getter is uv_fileno(), the socket libuv polls. Reading it is safe here because the
 * call is synchronous on the event loop thread that owns the handle (it cannot be
 * closed and the number reused under us), and getsockopt/getsockname only read socket
 * state. Undefined for sockets without a kernel fd of their own (TLSSocket over a
 * JS stream, pipes, a destroyed socket; Windows reports -1).
 */
function socketFd(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * Where the client of an accepted connection meant to go, when the connection was
 * redirected to this listener (iptables REDIRECT/TPROXY-less NAT, or the fast path's
 * cgroup connect hook); undefined when it was not, when the socket is gone, or when the
 * addon is unavailable. Never throws: the data plane must not fail a client over this.
 */
export function readOriginalDst(socket: net.Socket): OriginalDst | undefined {
  const a = addon ?? load();
  if (!a) return undefined;
  const fd = socketFd(socket);
  if (fd === undefined) return undefined;
  try {
    const r = a.originalDst(fd);
    return r ? { address: r.address, port: r.port } : undefined;
  } catch {
    return undefined; // EBADF/ENOTSOCK: the socket went away between accept and now
  }
}

/** SO_COOKIE: the kernel's 64-bit id of the socket (what BPF programs key sockets by). */
export function readSocketCookie(socket: net.Socket): bigint | undefined {
  const a = addon ?? load();
  const fd = a ? socketFd(socket) : undefined;
  if (!a || fd === undefined) return undefined;
  try {
    return a.socketCookie(fd) ?? undefined;
  } catch {
    return undefined;
  }
}

let warned = false;

/**
 * Logs, once per process, why original destinations cannot be restored; for the
 * listener to call when a config first asks for the original_dst listener filter.
 */
export function warnIfOriginalDstUnavailable(log: (line: string) => void): void {
  if (warned) return;
  const a = originalDstAvailability();
  if (a.ok) return;
  warned = true;
  log(`original_dst: restoring the original destination from SO_ORIGINAL_DST is unavailable: ${a.reason}`);
}
