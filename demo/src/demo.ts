/**
 * `pilotfish demo`: the whole mesh on one machine without Docker. Our control plane
 * (in-process), three services (frontend -> reviews v1/v2 and ratings), a pilotfish
 * sidecar process beside each instance, a pilotfish waypoint in front of the backends
 * configured over ADS, mTLS everywhere between proxies with dev-CA SPIFFE certificates,
 * a traffic generator and a live table. The mesh file is watched: replicas and weights
 * change traffic within a second, make-before-break, without a failed request.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, unwatchFile, watchFile, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { issueWorkload, mintRoot } from '../../certs/src/index.js';
import { ControlPlane } from '../../controlplane/src/index.js';
import { TYPE_URLS } from '../../xds-client/src/index.js';
import { startBackend, startFrontend, type App } from './apps.js';
import { clusterName, sidecarBootstrap, spiffe, TRUST_DOMAIN, waypointBootstrap, waypointMesh, waypointResources, writeJson, type CertFiles, type EndpointState, type SidecarPorts } from './config.js';
import { parseSpec, type DemoSpec } from './spec.js';
import { Stats } from './stats.js';
import { renderTable } from './table.js';
import { TrafficGenerator } from './traffic.js';

export interface DemoOptions {
  readonly meshFile?: string;
  readonly durationMs?: number;
  readonly out: (s: string) => void;
  readonly tty: boolean;
  readonly keep?: boolean;
  readonly signal?: AbortSignal;
}

export interface DemoSummary {
  readonly requests: number;
  readonly failures: number;
  readonly routes: Record<string, { total: number; failures: number; versions: Record<string, number> }>;
}

// demo/mesh.yaml from the sources (demo/src) or from the build (dist/demo/src).
const DEFAULT_MESH = [new URL('../mesh.yaml', import.meta.url), new URL('../../../demo/mesh.yaml', import.meta.url)].map((u) => fileURLToPath(u)).find((f) => existsSync(f)) ?? 'demo/mesh.yaml';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/**
 * How to run `pilotfish proxy`: the compiled CLI whenever it is built (also when the demo
 * itself runs from sources, as in tests: six proxies each transpiling the tree through tsx
 * on a cold cache took over a minute on two cores), else the sources through tsx.
 */
function pilotfishCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  const fromSource = here.endsWith('.ts');
  const root = join(dirname(here), '..', '..', ...(fromSource ? [] : ['..']));
  const compiled = join(root, 'dist', 'cli', 'src', 'main.js');
  if (!fromSource || (existsSync(compiled) && process.env.PILOTFISH_FROM_SOURCE !== '1')) return [join(root, 'bin', 'pilotfish.js')];
  // The CLI's entry by path: a separate process, so demo/ never imports cli/ (which imports demo/).
  return ['--import', 'tsx', join(root, 'cli', 'src', 'entry.ts')];
}

async function until(pred: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000}s waiting for ${what}`);
    await sleep(100);
  }
}

async function httpOk(url: string): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

class Sidecar {
  private exited: Promise<void>;
  constructor(readonly id: string, readonly proc: ChildProcess) {
    this.exited = new Promise((r) => proc.once('exit', () => r()));
  }
  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 4000);
    await this.exited;
    clearTimeout(t);
  }
}

interface Instance {
  readonly id: string;
  readonly cluster: string;
  readonly app: App;
  readonly sidecar: Sidecar;
  readonly ports: SidecarPorts;
  terminating: boolean;
}

export class Demo {
  readonly stats = new Stats();
  readonly workdir: string;
  private readonly logDir: string;
  private readonly certDir: string;
  readonly meshFile: string;
  private readonly cp = new ControlPlane();
  private xdsPort = 0;
  private waypointPort = 0;
  private waypointAdmin = 0;
  private spec!: DemoSpec;
  private certs = new Map<string, CertFiles>();
  private ca!: Awaited<ReturnType<typeof mintRoot>>;
  private readonly sidecars: Sidecar[] = [];
  private readonly instances: Instance[] = [];
  private frontend: (App & { agent: unknown }) | undefined;
  private frontendPorts: SidecarPorts | undefined;
  private generator: TrafficGenerator | undefined;
  private queue: Promise<void> = Promise.resolve();
  private seq = 0;
  private lastError = '';
  private readonly killAll = () => {
    for (const s of this.sidecars) if (s.alive) s.proc.kill('SIGKILL');
  };

  constructor(private readonly opts: DemoOptions) {
    this.workdir = mkdtempSync(join(tmpdir(), 'pilotfish-demo-'));
    this.logDir = join(this.workdir, 'logs');
    this.certDir = join(this.workdir, 'certs');
    mkdirSync(this.logDir);
    mkdirSync(this.certDir);
    this.meshFile = opts.meshFile ?? join(this.workdir, 'mesh.yaml');
    if (!opts.meshFile) copyFileSync(DEFAULT_MESH, this.meshFile);
    // A crash must not leave sidecars behind.
    process.once('exit', this.killAll);
  }

  private async certFor(sa: string): Promise<CertFiles> {
    let c = this.certs.get(sa);
    if (c) return c;
    const w = await issueWorkload({ ca: this.ca, spiffeId: spiffe(sa) });
    const cert = join(this.certDir, `${sa}.pem`);
    const key = join(this.certDir, `${sa}-key.pem`);
    writeFileSync(cert, w.chainPem);
    writeFileSync(key, w.keyPem, { mode: 0o600 });
    c = { cert, key, ca: join(this.certDir, 'ca.pem') };
    this.certs.set(sa, c);
    return c;
  }

  private spawnProxy(id: string, bootstrap: unknown): Sidecar {
    const file = writeJson(join(this.workdir, `${id}.json`), bootstrap);
    const out = openSync(join(this.logDir, `${id}.out`), 'a');
    const proc = spawn(process.execPath, [...pilotfishCommand(), 'proxy', '--config', file, '--drain-time-s', '1', '--log-level', 'warning'], { stdio: ['ignore', out, out] });
    closeSync(out);
    const s = new Sidecar(id, proc);
    this.sidecars.push(s);
    return s;
  }

  private async waitReady(id: string, adminPort: number, port: number): Promise<void> {
    const log = join(this.logDir, `${id}.out`);
    // The newest process with this id (an id comes back when a service scales out again).
    let proc: Sidecar | undefined;
    for (let i = this.sidecars.length - 1; i >= 0 && proc === undefined; i--) if (this.sidecars[i]!.id === id) proc = this.sidecars[i];
    await until(async () => {
      // A proxy that exited (a port taken meanwhile, a refused bootstrap) will never be ready: say so now, not after 90 s.
      if (proc !== undefined && !proc.alive) throw new Error(`${id} exited (${proc.proc.exitCode ?? proc.proc.signalCode}) before it was ready: see ${log}`);
      return (await httpOk(`http://127.0.0.1:${adminPort}/ready`)) && (await tcpOpen(port));
    }, 90_000, `${id} to be ready (see ${log})`);
  }

  async start(): Promise<void> {
    this.spec = parseSpec(readFileSync(this.meshFile, 'utf8'));
    this.ca = await mintRoot({ trustDomain: TRUST_DOMAIN, commonName: 'pilotfish demo CA' });
    writeFileSync(join(this.certDir, 'ca.pem'), this.ca.certPem);
    this.xdsPort = await this.cp.listen(0, '127.0.0.1');
    this.waypointPort = await freePort();
    this.waypointAdmin = await freePort();
    const waypointCerts = await this.certFor('waypoint');
    this.pushMesh();
    void waypointCerts;

    // frontend: app + sidecar (plain inbound from the generator, mTLS outbound to the waypoint)
    const fp: SidecarPorts = { admin: await freePort(), inbound: await freePort(), outbound: await freePort(), app: 0 };
    this.frontend = await startFrontend(fp.outbound!, () => [...this.spec.services.keys()], this.stats);
    this.frontendPorts = { ...fp, app: this.frontend.port };
    const frontCerts = await this.certFor('frontend');
    const front = this.spawnProxy('frontend-0', sidecarBootstrap({ id: 'frontend-0', service: 'frontend', ports: this.frontendPorts, certs: frontCerts, logDir: this.logDir, plainInbound: true, waypointPort: this.waypointPort }));
    const waypoint = this.spawnProxy('waypoint', waypointBootstrap({ adminPort: this.waypointAdmin, xdsPort: this.xdsPort }));
    await Promise.all([this.reconcile(this.spec), this.waitReady('frontend-0', fp.admin, fp.inbound), this.waitReady('waypoint', this.waypointAdmin, this.waypointPort)]);
    void front;
    void waypoint;
    // The mesh is up when a request makes it through every hop.
    await until(async () => httpOk(`http://127.0.0.1:${fp.inbound}/`), 30_000, 'the first request through the mesh');
    this.generator = new TrafficGenerator(fp.inbound, this.stats, this.spec.rps);
    this.generator.start();
    watchFile(this.meshFile, { interval: 250 }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) this.reload();
    });
  }

  private reload(): void {
    let next: DemoSpec;
    try {
      next = parseSpec(readFileSync(this.meshFile, 'utf8'));
    } catch (e) {
      this.lastError = `${this.meshFile}: ${(e as Error).message} (keeping the last good mesh)`;
      return;
    }
    this.lastError = '';
    this.queue = this.queue.then(() => this.reconcile(next)).catch((e) => void (this.lastError = (e as Error).message));
  }

  /** Endpoints the waypoint should know: running instances, terminating ones flagged. */
  private endpoints(): Map<string, EndpointState[]> {
    const m = new Map<string, EndpointState[]>();
    for (const i of this.instances) {
      let l = m.get(i.cluster);
      if (!l) m.set(i.cluster, (l = []));
      l.push({ port: i.ports.inbound, terminating: i.terminating });
    }
    return m;
  }

  /** Serves the waypoint's resources: additions clusters -> endpoints -> routes -> listeners, removals the other way. */
  private pushMesh(): void {
    const compiled = waypointResources(waypointMesh(this.spec, this.waypointPort, this.endpoints()), this.certs.get('waypoint')!);
    const order = [TYPE_URLS.cluster, TYPE_URLS.endpoint, TYPE_URLS.lbEndpoint, TYPE_URLS.route, TYPE_URLS.listener];
    const server = this.cp.server;
    for (const url of order) server.updateResources(url, (compiled.get(url) ?? new Map()) as never);
    for (const url of [...order].reverse()) {
      const keep = compiled.get(url) ?? new Map();
      const gone = [...server.store.resources(url).keys()].filter((n) => !keep.has(n));
      if (gone.length > 0) server.updateResources(url, new Map(), gone);
    }
  }

  private async startInstance(service: string, version: string): Promise<Instance> {
    const id = `${service}-${version}-${this.seq++}`;
    const app = await startBackend(service, version, id);
    const ports: SidecarPorts = { admin: await freePort(), inbound: await freePort(), app: app.port };
    const sidecar = this.spawnProxy(id, sidecarBootstrap({ id, service, ports, certs: await this.certFor(service), logDir: this.logDir }));
    try {
      await this.waitReady(id, ports.admin, ports.inbound);
    } catch (e) {
      await sidecar.stop();
      await app.close();
      throw e;
    }
    return { id, cluster: clusterName(service, version), app, sidecar, ports, terminating: false };
  }

  /** Make before break: start new instances, publish; then drain and stop surplus ones. */
  private async reconcile(spec: DemoSpec): Promise<void> {
    const want = new Map<string, { service: string; version: string; replicas: number; weight: number }>();
    for (const [svc, versions] of spec.services) for (const [v, s] of versions) want.set(clusterName(svc, v), { service: svc, version: v, replicas: s.replicas, weight: s.weight });
    const live = (cluster: string) => this.instances.filter((i) => i.cluster === cluster && !i.terminating);
    // Weights apply at once when every weighted version already has an instance; otherwise after the new ones are up.
    if ([...want].every(([c, w]) => w.weight === 0 || live(c).length > 0)) {
      this.spec = spec;
      if (this.generator) this.generator.rps = spec.rps;
      this.pushMesh();
    }
    const starts: Promise<Instance>[] = [];
    for (const [cluster, w] of want) for (let n = live(cluster).length; n < w.replicas; n++) starts.push(this.startInstance(w.service, w.version));
    const started = await Promise.allSettled(starts);
    for (const r of started) if (r.status === 'fulfilled') this.instances.push(r.value);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) this.lastError = String(failed.reason?.message ?? failed.reason);
    const surplus: Instance[] = [];
    for (const cluster of new Set(this.instances.map((i) => i.cluster))) surplus.push(...live(cluster).slice(want.get(cluster)?.replicas ?? 0));
    for (const s of surplus) s.terminating = true;
    this.spec = spec;
    if (this.generator) this.generator.rps = spec.rps;
    this.pushMesh();
    if (surplus.length === 0) return;
    // Draining endpoints get no new requests; in-flight ones finish; then they leave.
    await sleep(1000);
    for (const s of surplus) this.instances.splice(this.instances.indexOf(s), 1);
    this.pushMesh();
    await sleep(300);
    await Promise.all(surplus.map(async (s) => {
      await s.sidecar.stop();
      await s.app.close();
    }));
  }

  where(): string {
    const inst = this.instances.map((i) => `    ${i.id.padEnd(16)} admin http://127.0.0.1:${i.ports.admin}/   mTLS inbound 127.0.0.1:${i.ports.inbound}`);
    return [
      `pilotfish demo: control plane (xDS, delta + SotW) 127.0.0.1:${this.xdsPort}; mesh file ${this.meshFile} (edit it: replicas, weight, rps)`,
      `  traffic -> frontend sidecar http://127.0.0.1:${this.frontendPorts?.inbound}/  (admin http://127.0.0.1:${this.frontendPorts?.admin}/stats/prometheus)`,
      `  waypoint           admin http://127.0.0.1:${this.waypointAdmin}/   (/clusters, /config_dump, /stats/prometheus)   mTLS 127.0.0.1:${this.waypointPort}`,
      ...inst,
      `  access logs and proxy output: ${this.logDir}`,
    ].join('\n');
  }

  frame(elapsedMs: number): string {
    const rows = this.stats.rows();
    const header = `${this.where()}\n\n${(elapsedMs / 1000).toFixed(0)}s   generator ${this.spec.rps} rps${this.lastError ? `\n  ! ${this.lastError}` : ''}`;
    return renderTable(rows, header);
  }

  summary(): DemoSummary {
    const routes: DemoSummary['routes'] = {};
    for (const [name, r] of this.stats.routes) routes[name] = { total: r.total, failures: r.failures, versions: Object.fromEntries(r.versions) };
    const front = this.stats.routes.get('/ (frontend)');
    return { requests: front?.total ?? 0, failures: [...this.stats.routes.values()].reduce((n, r) => n + r.failures, 0), routes };
  }

  async stop(): Promise<void> {
    unwatchFile(this.meshFile);
    await this.generator?.stop();
    await this.queue.catch(() => undefined);
    await Promise.all(this.sidecars.map((s) => s.stop()));
    await Promise.all(this.instances.map((i) => i.app.close()));
    await this.frontend?.close();
    await this.cp.close();
    process.removeListener('exit', this.killAll);
    if (!this.opts.keep) rmSync(this.workdir, { recursive: true, force: true });
  }
}
