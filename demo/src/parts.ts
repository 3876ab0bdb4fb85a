/**
 * The demo's pieces as separate processes, for containers (docker-compose.yml, deploy/):
 *   pilotfish demo app --service reviews --version v1 [--listen 0.0.0.0:9080]
 *   pilotfish demo app --service frontend --outbound 15001 --calls reviews,ratings [--listen 0.0.0.0:9080]
 *   pilotfish demo traffic --target host:port [--rps 25] [--wait-s 180] [--warmup 30] [--every-s 5]
 *     (starts once the target answers 200 `warmup` times in a row; a table and a
 *      `traffic-summary {json}` line every 5s)
 *   pilotfish demo controlplane --mesh mesh.yaml --kubernetes NAMESPACE [--port 18000]
 *     (an alias of `pilotfish controlplane --config mesh.yaml --kubernetes NAMESPACE`)
 * Each runs until SIGINT/SIGTERM.
 */
import * as http from 'node:http';
import { parseArgs } from 'node:util';
import { startBackend, startFrontend } from './apps.js';
import { Stats } from './stats.js';
import { renderTable } from './table.js';
import { TrafficGenerator } from './traffic.js';

function hostPort(v: string, what: string): { host: string; port: number } {
  const i = v.lastIndexOf(':');
  const host = i < 0 ? '0.0.0.0' : v.slice(0, i);
  const port = Number(i < 0 ? v : v.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${what}: expected HOST:PORT or PORT, got ${v}`);
  return { host, port };
}

function untilSignal(): Promise<void> {
  return new Promise((r) => {
    process.once('SIGINT', () => r());
    process.once('SIGTERM', () => r());
  });
}

/**
 * Polls `GET /` until `streak` answers in a row are 200 (true), the deadline or `stop`
 * (false). One 200 is not enough: with static endpoints every backend must be up, and a
 * weighted split reaches a 20% version only now and then.
 */
async function meshUp(host: string, port: number, ms: number, streak: number, stop: Promise<void>): Promise<boolean> {
  let stopping = false;
  void stop.then(() => (stopping = true));
  const end = Date.now() + ms;
  let inRow = 0;
  while (!stopping && Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.get({ host, port, path: '/', timeout: 2000, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200));
        res.on('error', () => resolve(false));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
    });
    inRow = ok ? inRow + 1 : 0;
    if (inRow >= streak) return true;
    await new Promise((r) => setTimeout(r, ok ? 50 : 500));
  }
  return false;
}

export async function runPart(argv: readonly string[]): Promise<number> {
  const [part, ...rest] = argv;
  const { values } = parseArgs({
    args: [...rest],
    options: {
      service: { type: 'string' }, version: { type: 'string', default: 'v1' }, listen: { type: 'string', default: '0.0.0.0:9080' },
      outbound: { type: 'string' }, mesh: { type: 'string' }, kubernetes: { type: 'string' }, port: { type: 'string', default: '18000' }, 'resync-s': { type: 'string', default: '300' }, calls: { type: 'string', default: 'reviews,ratings' }, target: { type: 'string' }, rps: { type: 'string', default: '25' },
      'wait-s': { type: 'string', default: '180' }, 'every-s': { type: 'string', default: '5' }, warmup: { type: 'string', default: '30' },
    },
    strict: true,
  });
  if (part === 'app') {
    if (!values.service) throw new Error('--service is required');
    const bind = hostPort(values.listen!, '--listen');
    const stats = new Stats();
    const app = values.service === 'frontend'
      ? await startFrontend(hostPort(values.outbound ?? '127.0.0.1:15001', '--outbound').port, () => values.calls!.split(',').filter(Boolean), stats, bind)
      : await startBackend(values.service, values.version!, `${values.service}-${values.version}`, bind);
    process.stdout.write(`demo app ${values.service} ${values.version} listening ${bind.host}:${app.port}\n`);
    await untilSignal();
    await app.close();
    return 0;
  }
  if (part === 'traffic') {
    if (!values.target) throw new Error('--target HOST:PORT is required');
    const target = hostPort(values.target, '--target');
    const host = target.host === '0.0.0.0' ? '127.0.0.1' : target.host;
    const stopped = untilSignal();
    // Engines differ in how they order start-up (podman-compose ignores health conditions):
    // count from the first answer through the whole mesh, not from container start.
    const waitS = Number(values['wait-s']);
    const streak = Number(values.warmup);
    process.stdout.write(`traffic: waiting up to ${waitS}s for ${streak} answers in a row with 200 from ${values.target} through the mesh\n`);
    if (!(await meshUp(host, target.port, waitS * 1000, streak, stopped))) {
      process.stdout.write(`traffic: ${values.target} did not answer 200 ${streak} times in a row within ${waitS}s\n`);
      return 1;
    }
    process.stdout.write(`traffic: the mesh answers; sending ${values.rps} requests/s\n`);
    const stats = new Stats();
    const gen = new TrafficGenerator(target.port, stats, Number(values.rps), host, true);
    gen.start();
    const t0 = Date.now();
    const report = (): void => {
      const rows = stats.rows();
      process.stdout.write(`${renderTable(rows, `traffic -> ${values.target} (${Math.round((Date.now() - t0) / 1000)}s)`)}\n`);
      // One machine-readable line per table (e2e/containers.test.ts reads the last one).
      const routes = Object.fromEntries(rows.map((r) => [r.route, { total: r.total, failures: r.failures, versions: r.versions }]));
      process.stdout.write(`traffic-summary ${JSON.stringify({ seconds: Math.round((Date.now() - t0) / 1000), routes })}\n\n`);
    };
    const t = setInterval(report, Number(values['every-s']) * 1000);
    await stopped;
    clearInterval(t);
    await gen.stop();
    report();
    return 0;
  }
  if (part === 'controlplane') {
    // Kept for manifests written before the Kubernetes source moved into the control plane:
    // the same as `pilotfish controlplane --config FILE --kubernetes NAMESPACE`.
    if (!values.mesh || !values.kubernetes) throw new Error('--mesh FILE and --kubernetes NAMESPACE are required');
    const { runControlPlaneCommand } = await import('../../controlplane/src/index.js');
    return runControlPlaneCommand(['--config', values.mesh, '--kubernetes', values.kubernetes, '--port', String(values.port), '--resync-s', String(values['resync-s'])]);
  }
  throw new Error(`unknown part "${part}" (expected app, traffic or controlplane)`);
}
