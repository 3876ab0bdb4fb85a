// `--port N --upstream-port M` for the benchmark's Node proxies; those that serve mTLS
// too take `--mtls-port P --ca F --cert F --key F`; those that serve h2c `--h2-port Q`.
import { parseArgs } from 'node:util';

export function proxyArgs() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' }, 'upstream-port': { type: 'string' },
      'mtls-port': { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
      'batch-writes': { type: 'boolean' }, 'h2-port': { type: 'string' },
    },
  });
  const port = Number(values.port), upstreamPort = Number(values['upstream-port']);
  if (!port || !upstreamPort) throw new Error('usage: --port N --upstream-port M [--mtls-port P --ca F --cert F --key F]');
  const mtlsPort = Number(values['mtls-port'] ?? 0);
  if (mtlsPort && !(values.ca && values.cert && values.key)) throw new Error('--mtls-port needs --ca, --cert and --key');
  return {
    port, upstreamPort, batchWrites: values['batch-writes'] === true, h2Port: Number(values['h2-port'] ?? 0),
    mtls: mtlsPort ? { port: mtlsPort, ca: values.ca, cert: values.cert, key: values.key } : undefined,
  };
}
