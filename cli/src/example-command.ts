import * as http from 'node:http';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Logger, loadBootstrapOrThrow, startProxy } from '../../proxy/src/index.js';
import { parseFlags } from './args.js';

const HELP = `Usage: pilotfish example [--config FILE]

Starts two small demo upstream services (127.0.0.1:8081 "service1" and :8082
"service2") and pilotfish in front of them with examples/front-proxy.yaml
(listener 127.0.0.1:10000, admin 127.0.0.1:9901). Ctrl-C stops everything.
`;

/** A demo upstream: answers every request with who it is and what it received. */
export function startDemoUpstream(name: string, port: number, host = '127.0.0.1'): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const body = JSON.stringify({ service: name, method: req.method, path: req.url, headers: req.headers }) + '\n';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

export async function runExampleCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  // The example is not compiled, so it lives outside dist/: cli/src/ or dist/cli/src/ -> repository root.
  const file = values.config ?? [new URL('../../examples/front-proxy.yaml', import.meta.url), new URL('../../../examples/front-proxy.yaml', import.meta.url)]
    .map((u) => fileURLToPath(u)).find((f) => existsSync(f)) ?? 'examples/front-proxy.yaml';
  const log = new Logger('info');
  const upstreams = [await startDemoUpstream('service1', 8081), await startDemoUpstream('service2', 8082)];
  const running = await startProxy(loadBootstrapOrThrow(file, log), { log, drainTimeMs: 2000 });
  process.stdout.write(`
pilotfish is running (config ${file}).
  curl -s http://127.0.0.1:10000/service/1        # routed to service1
  curl -s http://127.0.0.1:10000/service/2        # routed to service2
  curl -s http://127.0.0.1:10000/split            # 80/20 weighted split
  curl -s http://127.0.0.1:10000/healthz          # direct response
  curl -s --http2-prior-knowledge http://127.0.0.1:10000/service/1   # h2c
  curl -s http://127.0.0.1:9901/stats/prometheus  # metrics
  curl -s http://127.0.0.1:9901/clusters          # upstream hosts
Ctrl-C to stop.
`);
  const stop = async () => {
    await running.stop(2000);
    for (const u of upstreams) u.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  return new Promise<number>(() => undefined);
}
