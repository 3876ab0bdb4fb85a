// Starting/stopping the processes under test, pinned with taskset, and readiness checks.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';

const live = new Set();

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
  const child = spawn('taskset', ['-c', String(core), cmd, ...args], {
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
    if (proc && !proc.running) throw new Error(`process exited before ready; log:\n${proc.log().slice(-2000)}`);
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
