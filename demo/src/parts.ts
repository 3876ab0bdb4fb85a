/**
 * The demo's pieces as separate processes, for containers (docker-compose.yml, deploy/):
 *   pilotfish demo app --service reviews --version v1 [--listen 0.0.0.0:9080]
 *   pilotfish demo app --service frontend --outbound 15001 --calls reviews,ratings [--listen 0.0.0.0:9080]
 *   pilotfish demo traffic --target host:port [--rps 25]
 * Each runs until SIGINT/SIGTERM.
 */
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

export async function runPart(argv: readonly string[]): Promise<number> {
  const [part, ...rest] = argv;
  const { values } = parseArgs({
    args: [...rest],
    options: {
      service: { type: 'string' }, version: { type: 'string', default: 'v1' }, listen: { type: 'string', default: '0.0.0.0:9080' },
      outbound: { type: 'string' }, calls: { type: 'string', default: 'reviews,ratings' }, target: { type: 'string' }, rps: { type: 'string', default: '25' },
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
    const stats = new Stats();
    const gen = new TrafficGenerator(target.port, stats, Number(values.rps), target.host === '0.0.0.0' ? '127.0.0.1' : target.host);
    gen.start();
    const t = setInterval(() => process.stdout.write(`${renderTable(stats.rows(), `traffic -> ${values.target}`)}\n\n`), 5000);
    await untilSignal();
    clearInterval(t);
    await gen.stop();
    return 0;
  }
  throw new Error(`unknown part "${part}" (expected app or traffic)`);
}
