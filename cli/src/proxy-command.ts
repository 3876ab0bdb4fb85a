import { isLevel, LEVELS, Logger, loadBootstrapOrThrow, validateBootstrap } from '../../proxy/src/index.js';
import { serveUntilSignal } from './serve.js';
import { intFlag, parseFlags, UsageError } from './args.js';

export const PROXY_HELP = `Usage: pilotfish proxy --config FILE [options]

Runs the proxy with an Envoy v3 bootstrap (YAML or JSON).

Options:
  -c, --config FILE        bootstrap file (.yaml, .yml or .json)           (required)
      --drain-time-s N     graceful drain time on SIGTERM, seconds         (default 10)
  -l, --log-level LEVEL    ${LEVELS.join('|')}              (default info)
      --admin-port N       override admin.address port (0 = any free port)
      --mode MODE          serve (default) or validate: check the config and exit
  -h, --help               this help
`;

export async function runProxyCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    config: { type: 'string', short: 'c' },
    'drain-time-s': { type: 'string' },
    'log-level': { type: 'string', short: 'l' },
    'admin-port': { type: 'string' },
    mode: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(PROXY_HELP);
    return 0;
  }
  if (!values.config) throw new UsageError('--config FILE is required (see pilotfish proxy --help)');
  const level = values['log-level'] ?? 'info';
  if (!isLevel(level)) throw new UsageError(`--log-level: expected one of ${LEVELS.join(', ')}, got "${level}"`);
  const mode = values.mode ?? 'serve';
  if (mode !== 'serve' && mode !== 'validate') throw new UsageError(`--mode: expected serve or validate, got "${mode}"`);
  const drainTimeMs = intFlag('drain-time-s', values['drain-time-s'], 10) * 1000;
  const adminPort = values['admin-port'] === undefined ? undefined : intFlag('admin-port', values['admin-port'], 0);
  const log = new Logger(level);
  const bootstrap = loadBootstrapOrThrow(values.config, log);
  if (mode === 'validate') {
    await validateBootstrap(bootstrap, log);
    process.stdout.write(`configuration '${values.config}' OK\n`);
    return 0;
  }
  return serveUntilSignal(bootstrap, { log, drainTimeMs, ...(adminPort !== undefined ? { adminPort } : {}) });
}

