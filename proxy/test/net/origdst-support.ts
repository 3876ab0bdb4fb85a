/** Shared by the SO_ORIGINAL_DST tests: build the addon on demand, start the listener and clients. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const LISTENER = fileURLToPath(new URL('./apps/origdst-listener.ts', import.meta.url));

/** Builds proxy/native/build/original_dst.node if it is missing (npm ci normally did). */
export function ensureAddon(): void {
  if (!existsSync(`${REPO}proxy/native/build/original_dst.node`)) {
    execFileSync(process.execPath, [`${REPO}proxy/native/build.mjs`], { stdio: 'inherit' });
  }
}

/** `node --import tsx <listener> specs...` behind a namespace/cgroup launcher prefix. */
export function listenerArgs(specs: string[]): string[] {
  return [process.execPath, '--import', 'tsx', LISTENER, ...specs];
}

// One connection: prints "LOCAL <port>" when connected, "GOT <first line>" or "ERROR <code>".
const CLIENT = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), timeout: 3000 });
let buf = '';
s.on('connect', () => console.log('LOCAL ' + s.localPort));
s.on('data', (d) => { buf += d; });
s.on('end', () => { console.log('GOT ' + buf.trim()); process.exit(0); });
s.on('timeout', () => { console.log('ERROR ETIMEDOUT'); process.exit(1); });
s.on('error', (e) => { console.log('ERROR ' + e.code); process.exit(1); });
`;

/** Spawns the one-connection client behind `prefix` (e.g. nsenter ... -S uid). */
export function client(prefix: string[], host: string, port: number, procs: ChildProcess[]): ChildProcess {
  const p = spawn(prefix[0]!, [...prefix.slice(1), process.execPath, '-e', CLIENT, host, String(port)], { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
  procs.push(p);
  return p;
}
