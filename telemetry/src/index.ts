import type { Bootstrap } from '../../config/src/index.js';

/**
 * Telemetry beyond stats (access logs, tracing): installed by the proxy's composition
 * root. `onRequestDone` is called once per finished request; when telemetry is off it is
 * undefined and the request path builds nothing for it.
 */
export interface TelemetryHooks {
  readonly onRequestDone: ((stream: unknown, request: unknown) => void) | undefined;
  close(): Promise<void>;
}

export async function installTelemetry(_bootstrap: Bootstrap): Promise<TelemetryHooks> {
  return { onRequestDone: undefined, close: async () => undefined };
}
