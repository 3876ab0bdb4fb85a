import type { Bootstrap } from '../../config/src/index.js';
import { startProxy, type Logger, type RunningProxy } from '../../proxy/src/index.js';

export interface ServeOptions {
  readonly log: Logger;
  readonly drainTimeMs: number;
  readonly adminPort?: number;
  /** Called once the proxy runs (e.g. to write the admin address where a supervisor looks). */
  readonly onStarted?: (running: RunningProxy) => void;
}

/**
 * Runs a proxy until SIGTERM/SIGINT or the admin's /quitquitquit: drains for
 * `drainTimeMs`, then exits. Shared by `pilotfish proxy` and the Envoy-compatible
 * command line pilot-agent uses.
 */
export async function serveUntilSignal(bootstrap: Bootstrap, opts: ServeOptions): Promise<number> {
  const { log, drainTimeMs } = opts;
  let exiting = false;
  const running = await startProxy(bootstrap, {
    log,
    drainTimeMs,
    ...(opts.adminPort !== undefined ? { adminPort: opts.adminPort } : {}),
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
  opts.onStarted?.(running);
  log.info('pilotfish started', { listeners: Object.fromEntries(running.server.boundPorts) });
  return new Promise<number>(() => undefined); // runs until a signal or /quitquitquit
}
