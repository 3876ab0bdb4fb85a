import { mkdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { dirname, extname } from 'node:path';
import { decodeBootstrap, Diagnostics, formatProblem, parseConfigText, type Bootstrap } from '../../config/src/index.js';
import { ConfigError, LEVELS, Logger, validateBootstrap, VERSION } from '../../proxy/src/index.js';

type Level = (typeof LEVELS)[number];
import { UsageError } from './args.js';
import { protoMerge } from './proto-merge.js';
import { serveUntilSignal } from './serve.js';

/**
 * Envoy's command line, so that a supervisor written for Envoy starts pilotfish in its
 * place unchanged — Istio's pilot-agent with ProxyConfig `binaryPath` pointing at
 * `pilotfish`, which runs `pilotfish -c etc/istio/proxy/envoy-rev.json --drain-time-s 45
 * --drain-strategy immediate --local-address-ip-version v4 --file-flush-interval-msec 1000
 * --disable-hot-restart --allow-unknown-static-fields -l warning --component-log-level
 * misc:error --concurrency 2`. Every flag Envoy's parser knows is accepted (Envoy refuses
 * unknown ones, so do we); those that change nothing in pilotfish are named in one
 * warning line instead of being dropped silently.
 */

type Kind = 'switch' | 'value' | 'multi';

/** Envoy's flags (source/server/options_impl.cc, and TCLAP's own), with how each reads its value. */
const FLAGS: Readonly<Record<string, Kind>> = {
  '--base-id': 'value', '--use-dynamic-base-id': 'switch', '--skip-hot-restart-on-no-parent': 'switch',
  '--skip-hot-restart-parent-stats': 'switch', '--base-id-path': 'value', '--concurrency': 'value',
  '--config-path': 'value', '--config-yaml': 'value', '--allow-unknown-fields': 'switch',
  '--allow-unknown-static-fields': 'switch', '--reject-unknown-dynamic-fields': 'switch',
  '--ignore-unknown-dynamic-fields': 'switch', '--skip-deprecated-logs': 'switch',
  '--log-stacktrace-single-entry': 'switch', '--admin-address-path': 'value',
  '--local-address-ip-version': 'value', '--log-level': 'value', '--component-log-level': 'value',
  '--log-format': 'value', '--log-format-escaped': 'switch', '--log-format-prefix-with-location': 'value',
  '--enable-fine-grain-logging': 'switch', '--log-path': 'value', '--restart-epoch': 'value',
  '--hot-restart-version': 'switch', '--service-cluster': 'value', '--service-node': 'value',
  '--service-zone': 'value', '--file-flush-interval-msec': 'value', '--file-flush-min-size-kb': 'value',
  '--drain-time-s': 'value', '--drain-strategy': 'value', '--parent-shutdown-time-s': 'value',
  '--mode': 'value', '--disable-hot-restart': 'switch', '--enable-mutex-tracing': 'switch',
  '--cpuset-threads': 'switch', '--disable-extensions': 'value', '--socket-path': 'value',
  '--socket-mode': 'value', '--enable-core-dump': 'switch', '--stats-tag': 'multi',
  '--bootstrap-version': 'value', '--max-obj-name-len': 'value', '--max-stats': 'value',
  '--version': 'switch', '--help': 'switch',
};
const SHORT: Readonly<Record<string, string>> = { '-c': '--config-path', '-l': '--log-level', '-h': '--help' };

/** Whether a first argument is one of Envoy's flags (pilotfish's own -h/--help/--version excepted). */
export function isEnvoyInvocation(first: string): boolean {
  if (first === '-h' || first === '--help' || first === '--version') return false;
  const eq = first.startsWith('--') ? first.indexOf('=') : -1;
  const spelled = eq > 0 ? first.slice(0, eq) : first;
  return (SHORT[spelled] ?? spelled) in FLAGS;
}

/** Flags pilotfish acts on; every other accepted flag is reported as without effect. */
const ACTED_ON = new Set([
  '--config-path', '--config-yaml', '--log-level', '--log-path', '--drain-time-s', '--mode',
  '--admin-address-path', '--service-cluster', '--service-node', '--service-zone',
  '--local-address-ip-version', '--version', '--help', '--hot-restart-version',
  // Settings that already hold in pilotfish: nothing to do, nothing to warn about.
  '--disable-hot-restart', '--allow-unknown-static-fields', '--allow-unknown-fields', '--ignore-unknown-dynamic-fields',
]);

export interface EnvoyArgs {
  /** Last value of each value flag, every value of a multi flag, true for switches. */
  readonly values: ReadonlyMap<string, string | true | readonly string[]>;
  /** The flags as given, in order, for the "without effect" line. */
  readonly given: readonly string[];
}

/** Reads an Envoy command line the way Envoy's parser (TCLAP) does; unknown flags are usage errors. */
export function parseEnvoyArgs(argv: readonly string[]): EnvoyArgs {
  const values = new Map<string, string | true | string[]>();
  const given: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--' || arg === '--ignore_rest') break;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const spelled = eq > 0 ? arg.slice(0, eq) : arg;
    const name = SHORT[spelled] ?? spelled;
    const kind = FLAGS[name];
    if (kind === undefined) throw new UsageError(`unknown Envoy flag "${spelled}"`);
    given.push(name);
    if (kind === 'switch') {
      if (eq > 0) throw new UsageError(`${name} takes no value`);
      values.set(name, true);
      continue;
    }
    let value: string | undefined = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`${name} needs a value`);
    if (kind === 'multi') {
      const prev = values.get(name);
      values.set(name, [...(Array.isArray(prev) ? prev : []), value]);
    } else values.set(name, value);
  }
  return { values, given };
}

/** Envoy's log levels to pilotfish's ("warn" is Envoy's alias of "warning"). */
export function envoyLogLevel(v: string): Level {
  const l = v.toLowerCase() === 'warn' ? 'warning' : v.toLowerCase();
  if (!(LEVELS as readonly string[]).includes(l)) throw new UsageError(`--log-level: expected one of trace, debug, info, warning, warn, error, critical, off; got "${v}"`);
  return l as Level;
}

function str(a: EnvoyArgs, name: string): string | undefined {
  const v = a.values.get(name);
  return typeof v === 'string' ? v : undefined;
}

function seconds(a: EnvoyArgs, name: string, fallback: number): number {
  const v = str(a, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${name}: expected a whole number of seconds, got "${v}"`);
  return n;
}

/**
 * The raw bootstrap Envoy would run: the `-c` file (JSON or YAML by extension, as Envoy
 * decides), `--config-yaml` merged over it, `--service-*` overriding the node.
 */
export function envoyBootstrapJson(a: EnvoyArgs, diag: Diagnostics): unknown {
  const file = str(a, '--config-path');
  const inline = str(a, '--config-yaml');
  if (file === undefined && inline === undefined) throw new UsageError('at least one of --config-path (-c) and --config-yaml is required');
  let json: unknown = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read config file "${file}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    const ext = extname(file).toLowerCase();
    if (ext === '.pb' || ext === '.pb_text') throw new ConfigError(`"${file}": binary and text protobuf bootstraps are not supported; use JSON or YAML`);
    json = parseConfigText(text, ext === '.json' ? 'json' : 'yaml', diag);
  }
  if (inline !== undefined) json = protoMerge(json, parseConfigText(inline, 'yaml', diag));
  const node: Record<string, unknown> = isObject(json) && isObject(json.node) ? { ...json.node } : {};
  const id = str(a, '--service-node');
  const cluster = str(a, '--service-cluster');
  const zone = str(a, '--service-zone');
  if (id !== undefined) node.id = id;
  if (cluster !== undefined) node.cluster = cluster;
  if (zone !== undefined) node.locality = { ...(isObject(node.locality) ? node.locality : {}), zone };
  return isObject(json) && (id !== undefined || cluster !== undefined || zone !== undefined) ? { ...json, node } : json;
}

export async function runEnvoyCommand(argv: string[]): Promise<number> {
  const a = parseEnvoyArgs(argv);
  if (a.values.has('--help')) {
    process.stdout.write(`Usage: pilotfish -c FILE [Envoy's flags]\n\nEnvoy's command line, for supervisors written for Envoy (Istio's pilot-agent).\nActed on: ${[...ACTED_ON].join(' ')}.\nEvery other Envoy flag is accepted and named in one warning line. See 'pilotfish proxy --help' for pilotfish's own command.\n`);
    return 0;
  }
  if (a.values.has('--version')) {
    process.stdout.write(`pilotfish ${VERSION} (Envoy-compatible command line)\n`);
    return 0;
  }
  if (a.values.has('--hot-restart-version')) {
    process.stdout.write('disabled\n'); // pilotfish has no hot restart, as Envoy built without it answers
    return 0;
  }
  const ipVersion = str(a, '--local-address-ip-version');
  if (ipVersion !== undefined && ipVersion !== 'v4' && ipVersion !== 'v6') throw new UsageError(`--local-address-ip-version: expected v4 or v6, got "${ipVersion}"`);
  const mode = str(a, '--mode') ?? 'serve';
  if (mode !== 'serve' && mode !== 'validate' && mode !== 'init_only') throw new UsageError(`--mode: expected serve, validate or init_only, got "${mode}"`);
  const strategy = str(a, '--drain-strategy');
  if (strategy !== undefined && strategy !== 'immediate' && strategy !== 'gradual') throw new UsageError(`--drain-strategy: expected immediate or gradual, got "${strategy}"`);

  const logPath = str(a, '--log-path');
  if (logPath !== undefined) mkdirSync(dirname(logPath), { recursive: true });
  const log = new Logger(envoyLogLevel(str(a, '--log-level') ?? 'info'), logPath === undefined ? undefined : (line) => appendFileSync(logPath, line + '\n'));
  const noEffect = [...new Set(a.given.filter((f) => !ACTED_ON.has(f)))];
  if (strategy === 'gradual') noEffect.push('--drain-strategy gradual (pilotfish tells every client at once, as immediate)');
  if (noEffect.length > 0) log.warn(`envoy flags accepted without effect in pilotfish: ${noEffect.join(', ')}`);

  const diag = new Diagnostics();
  const json = envoyBootstrapJson(a, diag);
  const bootstrap = json === undefined ? undefined : decodeBootstrap(json, diag);
  for (const w of diag.warnings) log.warn(`config: ${formatProblem(w)}`);
  if (diag.errors.length > 0 || bootstrap === undefined) throw new ConfigError(diag.errors.map(formatProblem).join('\n') || 'the configuration is empty');
  if (mode !== 'serve') {
    await validateBootstrap(bootstrap as Bootstrap, log);
    process.stdout.write(`configuration '${str(a, '--config-path') ?? '--config-yaml'}' OK\n`);
    return 0;
  }
  const adminAddressPath = str(a, '--admin-address-path');
  return serveUntilSignal(bootstrap, {
    log,
    drainTimeMs: seconds(a, '--drain-time-s', 600) * 1000,
    onStarted: (running) => {
      // Envoy writes "ip:port" of its admin listener there once it listens (supervisors poll it).
      if (adminAddressPath !== undefined && running.adminPort !== undefined && bootstrap.admin) {
        writeFileSync(adminAddressPath, `${bootstrap.admin.address.address}:${running.adminPort}`);
      }
    },
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
