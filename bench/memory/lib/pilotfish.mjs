// Starting a pilotfish build under measurement and waiting until it is ready.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { pilotfishBootstrap } from '../../http/lib/configs.mjs';

export const live = new Set();

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

export function get(url, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '' }));
  });
}

/**
 * Spawns `node [nodeArgs] <root>/bin/pilotfish.js proxy -c <config>` (optionally pinned with
 * taskset) and resolves once `readyUrl` answers 200, with the time from spawn to ready.
 */
export async function startPilotfish({ root, config, nodeArgs = [], env = {}, logFile, readyUrl, core, timeoutMs = 120_000 }) {
  const fd = openSync(logFile, 'a');
  const base = [process.execPath, ...nodeArgs, join(root, 'bin/pilotfish.js'), 'proxy', '-c', config, '--log-level', 'warning'];
  const argv = core === undefined ? base : ['taskset', '-c', String(core), ...base];
  const t0 = performance.now();
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
  closeSync(fd);
  live.add(proc);
  const exited = new Promise((r) => proc.once('exit', (code, signal) => { live.delete(proc); r({ code, signal }); }));
  let gone = false;
  void exited.then(() => { gone = true; });
  for (;;) {
    if (gone) throw new Error(`pilotfish exited before ready: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
    if (performance.now() - t0 > timeoutMs) { proc.kill('SIGKILL'); throw new Error('pilotfish not ready in time'); }
    const r = await get(readyUrl, 500);
    if (r.status === 200) break;
    await new Promise((r2) => setTimeout(r2, 5));
  }
  const readyMs = performance.now() - t0;
  return {
    proc, pid: proc.pid, readyMs,
    stop: async () => { if (!gone) { proc.kill('SIGKILL'); await exited; } },
  };
}

export function stopAll() {
  for (const p of live) p.kill('SIGKILL');
}
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => { stopAll(); process.exit(130); });
process.once('exit', stopAll);

/** The minimal static HTTP bootstrap: one listener, one route, one STATIC cluster, admin. */
export function minimalBootstrap({ port, adminPort, upstreamPort }) {
  // The HTTP benchmark's bootstrap: memory and CPU figures are measured on the same config.
  return pilotfishBootstrap({ port, adminPort, upstreamPort });
}
