/** `pilotfish controlplane --config mesh.yaml [--port N] [--address A] [--kubernetes NAMESPACE]` */
import { readFileSync, watchFile, unwatchFile } from 'node:fs';
import { ControlPlane } from './controlplane.js';
import type { EndpointSliceWatcher } from './kubernetes.js';
import { MeshError, parseEndpoint, parseMeshText, type Mesh } from './mesh.js';

const USAGE = `Usage: pilotfish controlplane --config <mesh.yaml> [--port <port>] [--address <addr>]
                              [--kubernetes <namespace> [--resync-s <s>]] [--verbose]

Serves the mesh description over xDS v3 ADS (state of the world and delta, LDS/RDS/CDS/EDS/LEDS)
and pushes only what changed when the file changes.

  --config, -c   mesh description (YAML: listeners, services with endpoint lists)
  --port, -p     gRPC port (default 18000; 0 picks a free one)
  --address      bind address (default 0.0.0.0)
  --kubernetes   take endpoints from the EndpointSlices of this namespace instead of the file:
                 each mesh service follows the Kubernetes Service of the same name (port named
                 "http", else the first); needs the optional package @kubernetes/client-node
  --resync-s     full relist period with --kubernetes (default 300)
  --verbose      log every push and ACK
  --help, -h     this text
`;

interface Args {
  config: string;
  port: number;
  address: string;
  verbose: boolean;
  kubernetes: string | undefined;
  resyncS: number;
}

function parseArgs(argv: readonly string[]): Args | 'help' | string {
  const a: Partial<Args> = { port: 18000, address: '0.0.0.0', verbose: false, kubernetes: undefined, resyncS: 300 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--help':
      case '-h':
        return 'help';
      case '--config':
      case '-c': {
        const v = value();
        if (!v) return `${flag}: needs a file name`;
        a.config = v;
        break;
      }
      case '--port':
      case '-p': {
        const v = value();
        const n = Number(v);
        if (v === undefined || !Number.isInteger(n) || n < 0 || n > 65535) return `${flag}: must be a port number 0..65535, got ${v ?? 'nothing'}`;
        a.port = n;
        break;
      }
      case '--address': {
        const v = value();
        if (!v) return `${flag}: needs an address`;
        a.address = v;
        break;
      }
      case '--kubernetes': {
        const v = value();
        if (!v) return `${flag}: needs a namespace`;
        a.kubernetes = v;
        break;
      }
      case '--resync-s': {
        const v = value();
        const n = Number(v);
        if (v === undefined || !(n > 0)) return `${flag}: must be a positive number of seconds, got ${v ?? 'nothing'}`;
        a.resyncS = n;
        break;
      }
      case '--verbose':
        a.verbose = true;
        break;
      default:
        return `${arg}: unknown argument (see --help)`;
    }
  }
  if (!a.config) return '--config: is required (see --help)';
  return a as Args;
}

function loadMesh(file: string): Mesh {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new MeshError((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message);
  }
  return parseMeshText(text);
}

/**
 * Runs until SIGINT/SIGTERM (exit code 0); returns 2 for bad arguments or an invalid
 * mesh at start-up. A bad edit later is reported and the last good mesh keeps serving.
 */
export async function runControlPlaneCommand(argv: readonly string[], opts: { signal?: AbortSignal; onListening?: (port: number) => void } = {}): Promise<number> {
  const args = parseArgs(argv);
  if (args === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (typeof args === 'string') {
    process.stderr.write(`pilotfish controlplane: ${args}\n`);
    return 2;
  }
  let mesh: Mesh;
  try {
    mesh = loadMesh(args.config);
  } catch (e) {
    process.stderr.write(`pilotfish controlplane: ${args.config}: ${(e as Error).message}\n`);
    return 2;
  }
  const log = (level: string, msg: string): void => {
    if (level === 'debug' && !args.verbose) return;
    process.stderr.write(`${new Date().toISOString()} ${level} ${msg}\n`);
  };
  const cp = new ControlPlane({ log });
  cp.server.on('nack', (ev: { node: string; typeUrl: string; error: string }) => log('warn', `NACK from ${ev.node} for ${ev.typeUrl}: ${ev.error}`));
  cp.setMesh(mesh);
  let port: number;
  try {
    port = await cp.listen(args.port, args.address);
  } catch (e) {
    process.stderr.write(`pilotfish controlplane: --port: cannot listen on ${args.address}:${args.port}: ${(e as Error).message}\n`);
    return 1;
  }
  let watcher: EndpointSliceWatcher | undefined;
  if (args.kubernetes !== undefined) {
    try {
      watcher = await startEndpointSlices(cp, mesh, args.kubernetes, args.resyncS, log);
    } catch (e) {
      await cp.close();
      process.stderr.write(`pilotfish controlplane: ${(e as Error).message}\n`);
      return 1;
    }
  }
  log('info', `control plane serving ${mesh.listeners.length} listeners, ${mesh.services.length} services on ${args.address}:${port}`);
  process.stdout.write(`listening ${port}\n`);
  opts.onListening?.(port);

  const reload = (): void => {
    try {
      let next = loadMesh(args.config);
      // With --kubernetes, endpoints come from the watcher and carry over a mesh edit.
      const w = watcher;
      if (w !== undefined) {
        next = { ...next, services: next.services.map((s) => ({ ...s, endpoints: (w.endpointsOf(s.name) ?? []).map((e, i) => parseEndpoint(e, `${s.name}.endpoints[${i}]`)) })) };
      }
      cp.setMesh(next);
      log('info', `reloaded ${args.config}`);
    } catch (e) {
      log('warn', `${args.config}: ${(e as Error).message} (keeping the last good mesh)`);
    }
  };
  // Polling survives editors that replace the file (rename), which fs.watch loses.
  watchFile(args.config, { interval: 300 }, (cur, prev) => {
    if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) reload();
  });

  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    opts.signal?.addEventListener('abort', stop, { once: true });
  });
  unwatchFile(args.config);
  await watcher?.stop();
  await cp.close();
  return 0;
}

/** Loads the optional Kubernetes client only now (a file-fed control plane never does). */
async function startEndpointSlices(
  cp: ControlPlane, mesh: Mesh, namespace: string, resyncS: number, log: (level: string, msg: string) => void,
): Promise<EndpointSliceWatcher> {
  const { EndpointSliceWatcher, defaultKubeConfig } = await import('./kubernetes.js');
  const watcher = new EndpointSliceWatcher(await defaultKubeConfig(), cp, {
    namespace,
    resyncMs: resyncS * 1000,
    targets: mesh.services.map((s) => ({ meshService: s.name, service: s.name, portName: 'http' })),
    log,
  });
  await watcher.start();
  log('info', `endpoints from EndpointSlices in namespace ${namespace}`);
  return watcher;
}
