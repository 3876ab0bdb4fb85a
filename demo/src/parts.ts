/**
 * The demo's pieces as separate processes, for containers (docker-compose.yml, deploy/):
 *   pilotfish demo app --service reviews --version v1 [--listen 0.0.0.0:9080]
 *   pilotfish demo app --service frontend --outbound 15001 --calls reviews,ratings [--listen 0.0.0.0:9080]
 *   pilotfish demo traffic --target host:port [--rps 25]
 *   pilotfish demo controlplane --mesh mesh.yaml --kubernetes NAMESPACE [--port 18000]
 *     (the control plane with endpoints from EndpointSlices: each mesh service follows the
 *      Kubernetes Service of the same name, port named `http` or the first)
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
      outbound: { type: 'string' }, mesh: { type: 'string' }, kubernetes: { type: 'string' }, port: { type: 'string', default: '18000' }, 'resync-s': { type: 'string', default: '300' }, calls: { type: 'string', default: 'reviews,ratings' }, target: { type: 'string' }, rps: { type: 'string', default: '25' },
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
  if (part === 'controlplane') {
    if (!values.mesh || !values.kubernetes) throw new Error('--mesh FILE and --kubernetes NAMESPACE are required');
    const { readFileSync } = await import('node:fs');
    const { ControlPlane, parseMeshText, parseEndpoint } = await import('../../controlplane/src/index.js');
    const { KubeConfig } = await import('@kubernetes/client-node');
    const { EndpointSliceWatcher } = await import('../../deploy/src/index.js');
    const mesh = parseMeshText(readFileSync(values.mesh, 'utf8'));
    const cp = new ControlPlane();
    cp.setMesh(mesh);
    const port = await cp.listen(Number(values.port), '0.0.0.0');
    const kc = new KubeConfig();
    kc.loadFromDefault(); // in a pod: the service account; elsewhere: ~/.kube/config
    const log = (level: string, msg: string) => void process.stderr.write(`${new Date().toISOString()} ${level} ${msg}\n`);
    const watcher = new EndpointSliceWatcher(kc, cp, {
      namespace: values.kubernetes,
      resyncMs: Number(values['resync-s']) * 1000,
      targets: mesh.services.map((s) => ({ meshService: s.name, service: s.name, portName: 'http' })),
      log,
    });
    await watcher.start();
    log('info', `control plane on :${port}; endpoints from EndpointSlices in namespace ${values.kubernetes}`);
    // A ConfigMap edit (routes, splits) reloads the mesh; endpoints carry over from the watcher.
    const { watchFile, unwatchFile } = await import('node:fs');
    const file = values.mesh;
    watchFile(file, { interval: 1000 }, () => {
      try {
        const next = parseMeshText(readFileSync(file, 'utf8'));
        cp.setMesh({
          ...next,
          services: next.services.map((s) => ({ ...s, endpoints: (watcher.endpointsOf(s.name) ?? []).map((e, i) => parseEndpoint(e, `${s.name}.endpoints[${i}]`)) })),
        });
        log('info', `reloaded ${file}`);
      } catch (e) {
        log('warn', `${file}: ${(e as Error).message} (keeping the last good mesh)`);
      }
    });
    await untilSignal();
    unwatchFile(file);
    await watcher.stop();
    await cp.close();
    return 0;
  }
  throw new Error(`unknown part "${part}" (expected app, traffic or controlplane)`);
}
