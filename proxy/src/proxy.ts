import { formatProblem, loadBootstrapFile, type Bootstrap } from '../../config/src/index.js';
import type { XdsClient } from '../../xds-client/src/index.js';
import { decodeSecret } from '../../certs/src/index.js';
import { installTelemetry, TelemetryConfigError } from '../../telemetry/src/index.js';
import { Diagnostics, isInternalListenerBootstrap } from '../../config/src/index.js';
import { decodeUserFilterSpec, systemClock, UserFilterManager, USER_FILTER_TYPE_URL, type Clock } from '../../filters/src/index.js';
import { decodeFastPathConfig, flowsAdminRoute, isFastPathExtension, startFastPath, type FastPath, type FastPathConfig } from '../../fastpath/src/index.js';
import { AdminServer } from './admin/admin-server.js';
import type { Logger } from './log.js';
import { OverloadManager } from './overload/overload-manager.js';
import { ConfigError, ProxyServer } from './server.js';
import { istioUpstreamExchanges, loadIstioExtensions, needsIstio } from './istio-extensions.js';

/**
 * The composition root: builds a running proxy from a decoded bootstrap — the data plane
 * (ProxyServer), telemetry, the fast path, the xDS client (SDS and ECDS included), the
 * admin endpoint and the overload manager — and wires them together. Every collaborator
 * with state is created here per proxy or passed in (two proxies in one process share
 * nothing); the CLI (cli/) and tests are thin callers.
 */
export interface ProxyDeps {
  readonly log: Logger;
  /** Override admin.address's port (0 = any free port). */
  readonly adminPort?: number;
  readonly drainTimeMs?: number;
  /** /quitquitquit: the CLI exits the process; tests and embedders decide for themselves. */
  readonly onQuit?: () => void;
  /** The overload manager this proxy's listeners and connection managers consult (default: a new one). */
  readonly overload?: OverloadManager;
  /** Hot-loaded user filters (default: a new manager, closed when the proxy stops). */
  readonly userFilters?: UserFilterManager;
  /** Source of randomness for weighted picks and splits (default Math.random); tests pass a seeded one. */
  readonly random?: () => number;
  /** Time for decisions such as token buckets (default: the system clock); tests pass a fake one. */
  readonly clock?: Clock;
  /** How to start the fast path (default: fastpath/'s startFastPath). */
  readonly startFastPath?: typeof startFastPath;
  /** How to build telemetry (default: telemetry/'s installTelemetry). */
  readonly installTelemetry?: typeof installTelemetry;
}

export interface RunningProxy {
  readonly server: ProxyServer;
  readonly overload: OverloadManager;
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

/** Starts a proxy in-process. */
export async function startProxy(bootstrap: Bootstrap, deps: ProxyDeps): Promise<RunningProxy> {
  const { log } = deps;
  const opts = deps;
  const overload = deps.overload ?? new OverloadManager();
  const ownsUserFilters = deps.userFilters === undefined;
  const clock = deps.clock ?? systemClock;
  const userFilters = deps.userFilters ?? new UserFilterManager({ clock, ...(deps.random ? { random: deps.random } : {}) });
  const server = new ProxyServer(bootstrap, log, { overload, userFilters, clock, ...(deps.random ? { random: deps.random } : {}) });
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
    overload.stop();
    if (ownsUserFilters) userFilters.close();
  };
  // User filters' lifecycle events and console output go to the proxy's log, with the filter's name and version.
  userFilters.onEvent = (name, version, event, reason) => log.info(`user filter ${event}`, { filter: name, version, ...(reason ? { reason } : {}) });
  userFilters.onLog = (name, version, level, line, dropped) => {
    const lvl = level === 'error' ? 'error' : level === 'warn' ? 'warning' : level === 'debug' ? 'debug' : 'info';
    log.log(lvl, `user filter console: ${line}`, { filter: name, version, ...(dropped > 0 ? { dropped_lines: dropped } : {}) });
  };
  const fastpathConfig = decodeBootstrapExtensions(bootstrap, log);
  overload.configure(bootstrap.overloadManager);
  server.stats.registerExternalGauges('overload.', () => ({ ...overload.stats }));
  const telemetry = await installTelemetryOrThrow(bootstrap, deps.installTelemetry ?? installTelemetry);
  server.onRequestDone = telemetry.onRequestDone as typeof server.onRequestDone;
  server.onRequestStart = telemetry.onRequestStart as typeof server.onRequestStart;
  if (telemetry.forAccessLog) server.tcpAccessLog = telemetry.forAccessLog.bind(telemetry);
  server.stats.registerExternalGauges('', () => telemetry.stats());
  // Istio's own filters (istio.stats, metadata exchange, istio_authn, istio.alpn), before any chain is built.
  const istioProtos = needsIstio(bootstrap) ? await loadIstioExtensions() : [];
  if (needsIstio(bootstrap)) for (const [alpn, exchange] of await istioUpstreamExchanges(bootstrap.node)) server.upstreamExchanges.set(alpn, exchange);
  try {
    await server.loadStatic();
  } catch (e) {
    await telemetry.close();
    await server.close();
    throw e;
  }
  if (fastpathConfig) {
    // The fast path says in one line why it is inactive (no privileges, no BPF, no toolchain); pilotfish runs on without it.
    const fp = await (deps.startFastPath ?? startFastPath)(fastpathConfig, (line) => log.info(line));
    fastpath = fp;
    server.endpointObservers.push((d) => fp.applyEndpointDiff(d));
    for (const [name, c] of server.clusterRuntimes()) {
      const eps = [...c.endpoints.hosts()].map((h) => h.endpoint);
      if (eps.length > 0) fp.applyEndpointDiff({ cluster: name, added: eps, removed: [], changed: [] });
    }
    server.stats.registerExternalGauges('', () => fp.metrics());
  }
  // grpc-js and protobufjs cost ~10 MB of RSS: loaded only when the bootstrap asks for xDS.
  const xdsModule = bootstrap.dynamicResources?.adsConfig ? await import('../../xds-client/src/index.js') : undefined;
  if (xdsModule && istioProtos.length > 0) xdsModule.loadExtraProtos(istioProtos);
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
          void userFilters.apply(e.name, { config: e.value.config }, `ecds "${e.name}"`).then((v) => {
            if (!v.ok) log.error(`ecds: filter "${e.name}" rejected; the previous version keeps serving`, { errors: v.errors.map(formatProblem) });
          });
        }
      },
    }],
    // The client's messages already say "xds: ...".
    log: (level, msg) => log.log(level === 'warn' ? 'warning' : level, msg),
  });
  if (xdsOptions && xdsModule) {
    const client = new xdsModule.XdsClient(xdsOptions);
    xds = client;
    const subscribeEcds = (names: ReadonlySet<string>) => client.subscribe(xdsModule.TYPE_URLS.extensionConfig, names);
    server.onEcdsNames = subscribeEcds;
    server.stats.registerExternalGauges('', () => envoyXdsStatNames(numericOnly(client.stats())));
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
  return { server, overload, admin, adminPort, xds, fastpath, stop };
}

/** Envoy scopes the CDS and LDS subscription stats under their managers (supervisors such as pilot-agent read them there). */
function envoyXdsStatNames(stats: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(stats)) {
    out[k.startsWith('cds.') ? `cluster_manager.${k}` : k.startsWith('lds.') ? `listener_manager.${k}` : k] = v;
  }
  return out;
}

function numericOnly(stats: Record<string, number | string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(stats)) if (typeof v === 'number') out[k] = v;
  return out;
}

/** bootstrap_extensions: the fast path is the one pilotfish knows; others are named in a warning. */
export function decodeBootstrapExtensions(bootstrap: Bootstrap, log: Logger): FastPathConfig | undefined {
  let config: FastPathConfig | undefined;
  bootstrap.bootstrapExtensions.forEach((ext, i) => {
    const path = `bootstrap_extensions[${i}]`;
    // envoy.bootstrap.internal_listener: internal listeners are always available in pilotfish (proxy/src/tunnel/).
    if (isInternalListenerBootstrap(ext)) return;
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
async function installTelemetryOrThrow(bootstrap: Bootstrap, install: typeof installTelemetry): ReturnType<typeof installTelemetry> {
  try {
    return await install(bootstrap);
  } catch (e) {
    if (e instanceof TelemetryConfigError) throw new ConfigError(e.message);
    throw e;
  }
}

/**
 * `--mode validate`: builds everything a real start would (filter chains, route tables,
 * TLS contexts, telemetry), binds nothing, and throws ConfigError on the first problem.
 */
export async function validateBootstrap(bootstrap: Bootstrap, log: Logger): Promise<void> {
  decodeBootstrapExtensions(bootstrap, log);
  await (await installTelemetryOrThrow(bootstrap, installTelemetry)).close();
  const userFilters = new UserFilterManager();
  if (needsIstio(bootstrap)) await loadIstioExtensions();
  const dry = new ProxyServer(bootstrap, log, { dryRun: true, userFilters });
  try {
    await dry.loadStatic();
  } finally {
    await dry.close();
    userFilters.close();
  }
}
