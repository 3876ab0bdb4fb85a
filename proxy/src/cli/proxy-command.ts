import { formatProblem, loadBootstrapFile, type Bootstrap } from '../../../config/src/index.js';
import type { XdsClient } from '../../../xds-client/src/index.js';
import { overloadManager } from '../overload/overload-manager.js';
import { decodeSecret } from '../../../certs/src/index.js';
import { installTelemetry, TelemetryConfigError } from '../../../telemetry/src/index.js';
import { Diagnostics } from '../../../config/src/index.js';
import { decodeUserFilterSpec, defaultUserFilterManager, USER_FILTER_TYPE_URL } from '../../../filters/src/index.js';
import { decodeFastPathConfig, flowsAdminRoute, isFastPathExtension, startFastPath, type FastPath, type FastPathConfig } from '../../../fastpath/src/index.js';
import { AdminServer } from '../admin/admin-server.js';
import { isLevel, LEVELS, Logger } from '../log.js';
import { ConfigError, ProxyServer } from '../server.js';
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

export interface RunningProxy {
  readonly server: ProxyServer;
  readonly admin: AdminServer | undefined;
  readonly adminPort: number | undefined;
  readonly xds: XdsClient | undefined;
  readonly fastpath: FastPath | undefined;
  stop(drainMs?: number): Promise<void>;
}

/** Loads a bootstrap and reports problems: warnings to the log, errors as ConfigError. */
export function loadBootstrapOrThrow(file: string, log: Logger): Bootstrap {
  const v = loadBootstrapFile(file);
  for (const w of v.warnings) log.warn(`config: ${formatProblem(w)}`);
  if (!v.ok) throw new ConfigError(v.errors.map(formatProblem).join('\n'));
  return v.value;
}

/** Starts a proxy in-process (also used by tests and the example). */
export async function startProxy(bootstrap: Bootstrap, log: Logger, opts: { adminPort?: number; drainTimeMs?: number; onQuit?: () => void } = {}): Promise<RunningProxy> {
  const server = new ProxyServer(bootstrap, log);
  let admin: AdminServer | undefined;
  let adminPort: number | undefined;
  const drainTimeMs = opts.drainTimeMs ?? 10_000;
  let xds: XdsClient | undefined;
  let fastpath: FastPath | undefined;
  const stop = async (drainMs = drainTimeMs) => {
    xds?.stop();
    await server.drain(drainMs);
    await server.close();
    await admin?.close();
    await telemetry.close();
    await fastpath?.close();
    overloadManager.stop();
  };
  // User filters' lifecycle events and console output go to the proxy's log, with the filter's name and version.
  const userFilters = defaultUserFilterManager();
  userFilters.onEvent = (name, version, event, reason) => log.info(`user filter ${event}`, { filter: name, version, ...(reason ? { reason } : {}) });
  userFilters.onLog = (name, version, level, line, dropped) => {
    const lvl = level === 'error' ? 'error' : level === 'warn' ? 'warning' : level === 'debug' ? 'debug' : 'info';
    log.log(lvl, `user filter console: ${line}`, { filter: name, version, ...(dropped > 0 ? { dropped_lines: dropped } : {}) });
  };
  const fastpathConfig = decodeBootstrapExtensions(bootstrap, log);
  overloadManager.configure(bootstrap.overloadManager);
  server.stats.registerExternalGauges('overload.', () => ({ ...overloadManager.stats }));
  const telemetry = await installTelemetryOrThrow(bootstrap);
  server.onRequestDone = telemetry.onRequestDone as typeof server.onRequestDone;
  server.onRequestStart = telemetry.onRequestStart as typeof server.onRequestStart;
  server.stats.registerExternalGauges('', () => telemetry.stats());
  try {
    await server.loadStatic();
  } catch (e) {
    await telemetry.close();
    await server.close();
    throw e;
  }
  if (fastpathConfig) {
    // The fast path says in one line why it is inactive (no privileges, no BPF, no toolchain); pilotfish runs on without it.
    const fp = await startFastPath(fastpathConfig, (line) => log.info(line));
    fastpath = fp;
    server.endpointObservers.push((d) => fp.applyEndpointDiff(d));
    for (const [name, c] of server.clusterRuntimes()) {
      const eps = [...c.endpoints.hosts()].map((h) => h.endpoint);
      if (eps.length > 0) fp.applyEndpointDiff({ cluster: name, added: eps, removed: [], changed: [] });
    }
    server.stats.registerExternalGauges('', () => fp.metrics());
  }
  // grpc-js and protobufjs cost ~10 MB of RSS: loaded only when the bootstrap asks for xDS.
  const xdsModule = bootstrap.dynamicResources?.adsConfig ? await import('../../../xds-client/src/index.js') : undefined;
  const { secretType, extensionConfigType, TYPE_URLS } = xdsModule ?? {};
  const xdsOptions = xdsModule?.xdsOptionsFromBootstrap(bootstrap, {
    sink: server,
    // SDS secrets are validated by certs/ while decoding, so a bad one is NACKed with its reason.
    resourceTypes: [{
      type: secretType!((json, diag, path) => {
        const spec = decodeSecret(json, diag, path);
        return spec ? { name: spec.name, typeUrl: TYPE_URLS!.secret, config: json } : undefined;
      }),
    }, {
      // ECDS: user filter versions by filter name, applied to the running chains' slots.
      // Integrity (sha256) and API range are checked here, before any code runs: a bad one is NACKed with the reason.
      type: extensionConfigType!((ext, diag, path) => {
        if (ext.typeUrl !== USER_FILTER_TYPE_URL) diag.error(`${path}.typed_config`, `ECDS is supported for ${USER_FILTER_TYPE_URL}, got ${ext.typeUrl}`);
        else decodeUserFilterSpec(ext.config, diag, `${path}.typed_config.value`);
      }),
      onChanges: (changes) => {
        for (const e of changes.upserted) {
          void defaultUserFilterManager().apply(e.name, { config: e.value.config }, `ecds "${e.name}"`).then((v) => {
            if (!v.ok) log.error(`ecds: filter "${e.name}" rejected; the previous version keeps serving`, { errors: v.errors.map(formatProblem) });
          });
        }
      },
    }],
    log: (level, msg) => log.log(level === 'warn' ? 'warning' : level, `xds: ${msg}`),
  });
  if (xdsOptions && xdsModule) {
    const client = new xdsModule.XdsClient(xdsOptions);
    xds = client;
    const subscribeEcds = (names: ReadonlySet<string>) => client.subscribe(xdsModule.TYPE_URLS.extensionConfig, names);
    server.onEcdsNames = subscribeEcds;
    server.stats.registerExternalGauges('', () => numericOnly(client.stats()));
    client.start();
    if (server.ecdsNames.size > 0) subscribeEcds(server.ecdsNames);
    log.info('xds client started', { servers: xdsOptions.servers.map((s) => `${s.address}:${s.port}`), api_type: xdsOptions.apiType });
  }
  if (bootstrap.admin) {
    admin = new AdminServer(server, log, {
      extraServerInfo: () => ({ fastpath: fastpath ? fastpath.status() : { active: false, reason: 'not configured (bootstrap_extensions has no pilotfish.fastpath)' } }),
      extraRoutes: fastpath ? [flowsAdminRoute(fastpath)] : [],
      extraConfigDump: () => (xds ? xds.configDump().map((d) => ({ '@type': 'pilotfish.xds.ResourceDump', ...d })) : []),
      address: bootstrap.admin.address.address,
      port: opts.adminPort ?? bootstrap.admin.address.port,
      drainTimeMs,
      quit: opts.onQuit ?? (() => void stop().then(() => process.exit(0))),
    });
    try {
      adminPort = await admin.listen();
    } catch (e) {
      // Like any listener that cannot bind: the proxy does not start (it used to run on without its admin endpoint).
      const err = e as NodeJS.ErrnoException;
      await stop(0).catch(() => undefined);
      throw new ConfigError(`admin.address: cannot listen on ${bootstrap.admin.address.address}:${opts.adminPort ?? bootstrap.admin.address.port}: ${err.code ?? err.message}`);
    }
    log.info('admin listening', { address: `${bootstrap.admin.address.address}:${adminPort}` });
  }
  if (xds) {
    // Like Envoy's init manager: LIVE once the first listeners and clusters arrived, or their fetch timed out.
    const timeoutMs = xdsOptions?.initialFetchTimeoutMs ?? 15_000;
    const client = xds;
    void Promise.race([client.initialized, new Promise((r) => setTimeout(r, timeoutMs).unref())]).then(() => server.markLive());
  } else server.markLive();
  return { server, admin, adminPort, xds, fastpath, stop };
}

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
    // Build everything a real start would (filter chains, route tables, TLS contexts), bind nothing.
    decodeBootstrapExtensions(bootstrap, log);
    await (await installTelemetryOrThrow(bootstrap)).close();
    const dry = new ProxyServer(bootstrap, log, true);
    try {
      await dry.loadStatic();
    } finally {
      await dry.close();
    }
    process.stdout.write(`configuration '${values.config}' OK\n`);
    return 0;
  }
  let exiting = false;
  const running = await startProxy(bootstrap, log, {
    drainTimeMs,
    ...(adminPort !== undefined ? { adminPort } : {}),
    onQuit: () => void shutdown('quitquitquit'),
  });
  async function shutdown(why: string): Promise<void> {
    if (exiting) return;
    exiting = true;
    log.info('shutting down', { reason: why, drain_time_ms: drainTimeMs });
    const hard = setTimeout(() => process.exit(0), drainTimeMs + 2000);
    hard.unref();
    await running.stop(drainTimeMs);
    process.exit(0);
  }
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  log.info('pilotfish started', { listeners: Object.fromEntries(running.server.boundPorts) });
  return new Promise<number>(() => undefined); // runs until a signal or /quitquitquit
}

function numericOnly(stats: Record<string, number | string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(stats)) if (typeof v === 'number') out[k] = v;
  return out;
}

/** bootstrap_extensions: the fast path is the one pilotfish knows; others are named in a warning. */
function decodeBootstrapExtensions(bootstrap: Bootstrap, log: Logger): FastPathConfig | undefined {
  let config: FastPathConfig | undefined;
  bootstrap.bootstrapExtensions.forEach((ext, i) => {
    const path = `bootstrap_extensions[${i}]`;
    if (!isFastPathExtension(ext)) {
      log.warn(`config: ${path}: extension ${ext.typeUrl} is not supported by pilotfish; ignored`);
      return;
    }
    const diag = new Diagnostics();
    const c = decodeFastPathConfig(ext, diag, `${path}.typed_config.value`);
    if (!c || diag.errors.length > 0) throw new ConfigError(diag.errors.map(formatProblem).join('\n'));
    config = c;
  });
  return config;
}

/** Access-log formats and tracing config are validated while telemetry is built; report them like any config error. */
async function installTelemetryOrThrow(bootstrap: Bootstrap): ReturnType<typeof installTelemetry> {
  try {
    return await installTelemetry(bootstrap);
  } catch (e) {
    if (e instanceof TelemetryConfigError) throw new ConfigError(e.message);
    throw e;
  }
}
