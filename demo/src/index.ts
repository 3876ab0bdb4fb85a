/** `pilotfish demo [--mesh FILE] [--duration 8s] [--keep]` */
import { Demo, type DemoSummary } from './demo.js';

export { Demo, type DemoSummary, type DemoOptions } from './demo.js';
export { parseSpec, SpecError, type DemoSpec } from './spec.js';

const USAGE = `Usage: pilotfish demo [--mesh FILE] [--duration D] [--keep]
       pilotfish demo app --service NAME [--version V] [--listen HOST:PORT] [--outbound PORT --calls a,b]
       pilotfish demo traffic --target HOST:PORT [--rps N] [--wait-s 180] [--warmup 30] [--every-s 5]
       pilotfish demo controlplane --mesh FILE --kubernetes NAMESPACE [--port 18000] [--resync-s 300]

Runs a whole mesh on this machine, without Docker: the pilotfish control plane, three
services (frontend -> reviews v1/v2, ratings) each with a pilotfish sidecar process,
a pilotfish waypoint in front of the backends (configured over ADS), mTLS between all
proxies with dev-CA SPIFFE certificates, a traffic generator and a live table of
requests per route, version split and latency percentiles.

Edit the mesh file while it runs (replicas, weights, rps): traffic changes within a
second. Ctrl-C stops and removes everything.

  --mesh FILE      demo mesh (default: a copy of demo/mesh.yaml in the demo's directory)
  --duration D     stop after D (e.g. 8s, 2m) and print a summary line; default: until Ctrl-C
  --keep           keep the working directory (bootstraps, certificates, access logs)
  --help, -h       this text

\`demo app\`, \`demo traffic\` and \`demo controlplane\` (endpoints from Kubernetes EndpointSlices)
run one piece each, for containers (docker-compose.yml, deploy/k8s).
`;

export function parseDuration(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(v.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

export async function runDemoCommand(argv: readonly string[]): Promise<number> {
  if (argv[0] === 'app' || argv[0] === 'traffic' || argv[0] === 'controlplane') return (await import('./parts.js')).runPart(argv);
  let meshFile: string | undefined;
  let durationMs: number | undefined;
  let keep = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--help': case '-h':
        process.stdout.write(USAGE);
        return 0;
      case '--mesh': {
        meshFile = value();
        if (!meshFile) return usageError('--mesh: needs a file');
        break;
      }
      case '--duration': {
        const v = value();
        durationMs = v === undefined ? undefined : parseDuration(v);
        if (durationMs === undefined) return usageError(`--duration: expected a duration like 8s, 500ms or 2m, got ${v ?? 'nothing'}`);
        break;
      }
      case '--keep':
        keep = true;
        break;
      default:
        return usageError(`${a}: unknown argument (see --help)`);
    }
  }
  const tty = process.stdout.isTTY === true;
  const out = (s: string) => void process.stdout.write(s);
  let demo: Demo;
  try {
    demo = new Demo({ ...(meshFile ? { meshFile } : {}), ...(durationMs !== undefined ? { durationMs } : {}), out, tty, keep });
  } catch (e) {
    process.stderr.write(`pilotfish demo: ${(e as Error).message}\n`);
    return 1;
  }
  let stopping = false;
  let resolveStop!: () => void;
  const stopped = new Promise<void>((r) => (resolveStop = r));
  const onSignal = () => {
    if (stopping) return;
    stopping = true;
    resolveStop();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  out('pilotfish demo: starting the control plane, the waypoint and the sidecars...\n');
  try {
    await Promise.race([demo.start(), stopped]);
  } catch (e) {
    process.stderr.write(`pilotfish demo: ${(e as Error).message}\n`);
    await demo.stop();
    return 1;
  }
  const t0 = performance.now();
  if (!stopping) out(`${demo.where()}\n`);
  const refresh = setInterval(() => {
    if (tty) out(`\x1b[H\x1b[2J${demo.frame(performance.now() - t0)}\n\n${keep ? `Ctrl-C stops everything and keeps ${demo.workdir}.` : 'Ctrl-C stops and removes everything.'}\n`);
  }, 1000);
  const timer = durationMs !== undefined ? setTimeout(onSignal, durationMs) : undefined;
  await stopped;
  clearInterval(refresh);
  if (timer) clearTimeout(timer);
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  // --keep: say where the files stay (the old message said "removing" while keeping them).
  const files = keep ? `keeping ${demo.workdir} (bootstraps, certificates, access logs)` : `removing ${demo.workdir}`;
  out(`\n${demo.frame(performance.now() - t0)}\n\nstopping: sidecars, waypoint, control plane; ${files}\n`);
  await demo.stop();
  const summary: DemoSummary = demo.summary();
  out(`summary ${JSON.stringify(summary)}\n`);
  return 0;
}

function usageError(msg: string): number {
  process.stderr.write(`pilotfish demo: ${msg}\n`);
  return 2;
}
