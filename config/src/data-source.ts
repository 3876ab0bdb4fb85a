/**
 * The one step that reads DataSources (files, environment variables) after decoding. Decoders only
 * return references (model.ts DataSource); whoever builds running state from a decoded config calls
 * these first, so an unreadable file is reported by its config path before anything changes.
 */
import { readFileSync } from 'node:fs';
import type { DataSource, DirectResponseAction, RouteConfiguration } from './model.js';
import type { Diagnostics } from './validation.js';

/** The path of the field that names the source, for error texts (`...certificate_chain.filename`). */
export function dataSourceField(ds: DataSource, fallback: string): string {
  if (ds.kind === 'inline') return fallback;
  const base = ds.field ?? fallback;
  const leaf = ds.kind === 'file' ? 'filename' : 'environment_variable';
  return base === '' ? leaf : `${base}.${leaf}`;
}

/** Reads a DataSource now; on failure reports one error at the source's field and returns undefined. */
export function readDataSource(ds: DataSource, diag: Diagnostics, fallbackPath = ''): Buffer | undefined {
  switch (ds.kind) {
    case 'inline':
      return ds.bytes;
    case 'env': {
      const v = process.env[ds.name];
      if (v === undefined) diag.error(dataSourceField(ds, fallbackPath), `environment variable "${ds.name}" is not set`);
      return v === undefined ? undefined : Buffer.from(v, 'utf8');
    }
    case 'file':
      try {
        return readFileSync(ds.path);
      } catch (e) {
        diag.error(dataSourceField(ds, fallbackPath), `cannot read "${ds.path}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
        return undefined;
      }
  }
}

/**
 * Returns the route configuration with every direct_response body read from its file or variable
 * (Envoy reads them once, when the route configuration is loaded). Unchanged object when nothing
 * needs reading.
 */
export function resolveRouteDataSources(config: RouteConfiguration, diag: Diagnostics, path = ''): RouteConfiguration {
  let changed = false;
  const virtualHosts = config.virtualHosts.map((vh, vi) => {
    let vhChanged = false;
    const routes = vh.routes.map((route, ri) => {
      const a = route.action;
      if (a.kind !== 'direct_response' || !a.bodySource || a.body !== undefined) return route;
      const bytes = readDataSource(a.bodySource, diag, `${path}.virtual_hosts[${vi}].routes[${ri}].direct_response.body`);
      if (bytes === undefined) return route;
      vhChanged = true;
      const action: DirectResponseAction = { ...a, body: bytes.toString('utf8') };
      return { ...route, action };
    });
    if (!vhChanged) return vh;
    changed = true;
    return { ...vh, routes };
  });
  return changed ? { ...config, virtualHosts } : config;
}
