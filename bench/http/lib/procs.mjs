// Starting/stopping the processes under test, pinned with taskset, and readiness checks.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';

const live = new Set();
let niceness = 0;

/** Niceness for everything started from now on (target, origin, load generator). */
export function setNice(n) { niceness = n; }

let autogroup = false;
try { autogroup = readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1'; } catch { /* no autogroup */ }

/**
 * spawn() with the configured priority. With scheduler autogroups (one per session),
 * plain nice only ranks processes inside their own session, so against other sessions'
 * builds and tests it does nothing: each process gets its own session (setsid) and that
 * autogroup gets the niceness.
 */
export function spawnWithPriority(file, argv, opts) {
  if (!niceness) return spawn(file, argv, opts);
  const child = spawn(file, argv, { ...opts, detached: autogroup });
  if (autogroup && child.pid) {
    try { writeFileSync(`/proc/${child.pid}/autogroup`, String(niceness)); } catch { /* best effort */ }
  }
  return child;
}

/** [file, args] running `cmd` pinned to `core` (and reniced); exec chain keeps the pid. */
export function pinned(core, cmd, args) {
  const base = ['taskset', '-c', String(core), cmd, ...args];
  const full = niceness ? ['nice', '-n', String(niceness), ...base] : base;
  return [full[0], full.slice(1)];
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Spawn `cmd args` pinned to `core`, output to `logFile`. taskset execs, so child.pid is the program's pid. */
export function startPinned({ core, cmd, args, logFile, env, cwd }) {
  const fd = openSync(logFile, 'a');
  const [file, argv] = pinned(core, cmd, args);
  const child = spawnWithPriority(file, argv, {
    stdio: ['ignore', fd, fd],
    env: env ?? process.env,
    cwd,
  });
  closeSync(fd);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let done = false;
  exited.then(() => { done = true; live.delete(handle); });
  const handle = {
    pid: child.pid,
    exited,
    get running() { return !done; },
    log: () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } },
    async stop(graceMs = 5000) {
      if (done) return exited;
      child.kill('SIGTERM');
      const t = setTimeout(() => { if (!done) child.kill('SIGKILL'); }, graceMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
  live.add(handle);
  return handle;
}

export async function stopAll() {
  await Promise.all([...live].map((h) => h.stop(2000)));
}

function getH1(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function getH2c(url) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    const fail = (e) => { session.destroy(); reject(e); };
    session.on('error', fail);
    session.setTimeout(2000, () => fail(new Error('timeout')));
    const req = session.request({ ':path': new URL(url).pathname });
    let status = 0, body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => (status = h[':status']));
    req.on('data', (d) => (body += d));
    req.on('end', () => { session.close(); resolve({ status, body }); });
    req.on('error', fail);
  });
}

/** Wait until `url` answers 200 with `body` (HTTP/1.1, or h2c when `h2`). */
export async function waitReady({ url, body, h2 = false, timeoutMs = 20000, proc }) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    if (proc && !proc.running) {
      const tail = proc.log().trim().split('\n').slice(-3).join(' | ');
      throw new Error(`process exited before ready: ${tail || '(no output)'}`);
    }
    try {
      const r = await (h2 ? getH2c(url) : getH1(url));
      if (r.status === 200 && r.body === body) return;
      last = `status ${r.status}, body ${JSON.stringify(r.body.slice(0, 80))}`;
    } catch (e) {
      last = String(e.message ?? e);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${h2 ? 'h2c' : 'HTTP/1.1'} ${url} not ready after ${timeoutMs} ms: ${last}`);
}
