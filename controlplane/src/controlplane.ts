/** A mesh description served over ADS: the programmatic API tests and the CLI share. */
import { TYPE_URLS } from '../../xds-client/src/index.js';
import { clusterJson, compileMesh, ledsResources, loadAssignmentJson } from './compile.js';
import { parseEndpoint, type Mesh, type MeshEndpoint } from './mesh.js';
import { XdsServer, type XdsServerLog } from './server.js';

export class ControlPlane {
  readonly server: XdsServer;
  private mesh: Mesh = { listeners: [], services: [] };

  constructor(opts: { log?: XdsServerLog } = {}) {
    this.server = new XdsServer(opts.log ? { log: opts.log } : {});
  }

  listen(port = 0, host = '127.0.0.1'): Promise<number> {
    return this.server.listen(port, host);
  }

  close(): Promise<void> {
    return this.server.close();
  }

  get current(): Mesh {
    return this.mesh;
  }

  /**
   * Serves a new mesh. Resources are compared by content, so only what changed is pushed
   * (delta: those resources; SotW: a new response for each type that changed).
   * Make before break: additions go clusters -> endpoints -> routes -> listeners so a new
   * route never points at an unknown cluster; removals go the other way round.
   */
  setMesh(mesh: Mesh): void {
    this.mesh = mesh;
    const compiled = compileMesh(mesh);
    const order = [TYPE_URLS.cluster, TYPE_URLS.endpoint, TYPE_URLS.lbEndpoint, TYPE_URLS.route, TYPE_URLS.listener];
    for (const url of order) this.server.updateResources(url, compiled.get(url) ?? new Map());
    for (const url of [...order].reverse()) {
      const keep = compiled.get(url) ?? new Map();
      const gone = [...this.server.store.resources(url).keys()].filter((n) => !keep.has(n));
      if (gone.length > 0) this.server.updateResources(url, new Map(), gone);
    }
  }

  /** Replaces one service's endpoints (EndpointSlice-like entries); returns the EDS or LEDS version. */
  setEndpoints(service: string, endpoints: readonly Partial<MeshEndpoint>[]): number {
    const i = this.mesh.services.findIndex((s) => s.name === service);
    if (i < 0) throw new Error(`unknown service "${service}"`);
    const eps = endpoints.map((e, j) => parseEndpoint(e, `${service}.endpoints[${j}]`));
    const old = this.mesh.services[i]!;
    const svc = { ...old, endpoints: eps };
    const services = [...this.mesh.services];
    services[i] = svc;
    this.mesh = { ...this.mesh, services };
    const cla = this.server.updateResources(TYPE_URLS.endpoint, new Map([[service, loadAssignmentJson(svc)]]));
    if (!svc.leds) return cla;
    const next = ledsResources(svc);
    const gone = [...ledsResources(old).keys()].filter((n) => !next.has(n));
    return this.server.updateResources(TYPE_URLS.lbEndpoint, next, gone);
  }

  /** Raw resources for a type (any type URL, including SDS secrets and ECDS). */
  setResources(typeUrl: string, resources: ReadonlyMap<string, Readonly<Record<string, unknown>>> | Readonly<Record<string, Readonly<Record<string, unknown>>>>): number {
    return this.server.setResources(typeUrl, resources);
  }

  /** Re-reads a single cluster definition (e.g. after a test tweaks it). */
  clusterJson(service: string): Record<string, unknown> | undefined {
    const s = this.mesh.services.find((x) => x.name === service);
    return s ? clusterJson(s) : undefined;
  }
}
