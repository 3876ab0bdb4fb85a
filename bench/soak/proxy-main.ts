// The soak's pilotfish process: the proxy started in-process from a bootstrap file, with
// the overload manager configured from it (the wiring the composition root needs).
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { Diagnostics, decodeBootstrap, formatProblem } from '../../config/src/index.js';
import { Logger, startProxy } from '../../proxy/src/index.js';

const diag = new Diagnostics();
const b = decodeBootstrap(parseYaml(readFileSync(process.argv[2]!, 'utf8')), diag);
if (!b) {
  console.error(diag.errors.map(formatProblem).join('\n'));
  process.exit(1);
}
// startProxy configures the proxy's own overload manager from the bootstrap.
const running = await startProxy(b, { log: new Logger('error'), adminPort: 0, drainTimeMs: 500, onQuit: () => undefined });
const port = running.server.boundPorts.values().next().value;
process.stdout.write(JSON.stringify({ port }) + '\n');
process.on('message', (m) => {
  if (m === 'stats') process.send?.({ stats: Object.fromEntries(running.server.stats.snapshot()), overload: running.overload.stats });
});
process.on('SIGTERM', () => void running.stop(0).then(() => process.exit(0)));
