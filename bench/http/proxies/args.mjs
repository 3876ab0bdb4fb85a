// `--port N --upstream-port M` for the benchmark's Node proxies.
import { parseArgs } from 'node:util';

export function proxyArgs() {
  const { values } = parseArgs({
    options: { port: { type: 'string' }, 'upstream-port': { type: 'string' } },
  });
  const port = Number(values.port), upstreamPort = Number(values['upstream-port']);
  if (!port || !upstreamPort) throw new Error('usage: --port N --upstream-port M');
  return { port, upstreamPort };
}
