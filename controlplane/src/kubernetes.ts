/**
 * `pilotfish controlplane --kubernetes NAMESPACE`: endpoints from Kubernetes.
 *
 * Feeds the control plane from Kubernetes: watches discovery.k8s.io/v1 EndpointSlices
 * (list, then watch; relisted every `resyncMs` and after a broken watch) and turns the
 * slices of each Kubernetes Service into the endpoints of one mesh service, with the
 * EndpointSlice conditions carried over (ready / serving / terminating -> Envoy health:
 * HEALTHY, DRAINING while terminating-but-serving, UNHEALTHY otherwise).
 *
 * The Kubernetes client (@kubernetes/client-node, tens of MB) is an optional dependency,
 * loaded only here and only when a watcher starts: a control plane fed from a file, and
 * every proxy, never load it, and an install without it says so in one line when asked
 * for --kubernetes.
 */
import type { Informer, KubeConfig, ObjectCache, V1EndpointSlice } from '@kubernetes/client-node';
import type { MeshEndpoint } from './mesh.js';

type KubernetesClient = typeof import('@kubernetes/client-node');

export const KUBERNETES_CLIENT = '@kubernetes/client-node';

/** The optional Kubernetes client is not installed (npm install --omit=optional, or a trimmed image). */
export class KubernetesClientMissing extends Error {}

let client: Promise<KubernetesClient> | undefined;

/**
 * Loads the optional Kubernetes client on first use. Rejects with KubernetesClientMissing
 * (a one-line message saying what to install) when the package is absent.
 */
export function loadKubernetesClient(): Promise<KubernetesClient> {
  client ??= import(KUBERNETES_CLIENT).then(
    (m: KubernetesClient) => m,
    (e: NodeJS.ErrnoException) => {
      client = undefined;
      if (e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes(KUBERNETES_CLIENT)) {
        throw new KubernetesClientMissing(`--kubernetes needs the optional package ${KUBERNETES_CLIENT}, which is not installed (npm install ${KUBERNETES_CLIENT})`);
      }
      throw e;
    },
  );
  return client;
}

/** In a pod: the service account; elsewhere: ~/.kube/config (KUBECONFIG). */
export async function defaultKubeConfig(): Promise<KubeConfig> {
  const { KubeConfig } = await loadKubernetesClient();
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

/** One mesh service (a control-plane cluster) from one Kubernetes Service's slices. */
export interface SliceTarget {
  readonly meshService: string;
  /** The Service's name: slices carry it in the `kubernetes.io/service-name` label. */
  readonly service: string;
  /** Port name in the slice (`ports[].name`); default: the first port. */
  readonly portName?: string;
}

export interface EndpointSink {
  setEndpoints(service: string, endpoints: readonly Partial<MeshEndpoint>[]): unknown;
}

export interface WatcherOptions {
  readonly namespace: string;
  readonly targets: readonly SliceTarget[];
  /** Full relist period (Kubernetes informers' resync); default 5 minutes. */
  readonly resyncMs?: number;
  readonly log?: (level: 'info' | 'warn', msg: string) => void;
}

const SERVICE_LABEL = 'kubernetes.io/service-name';

/** Slices of one Service -> mesh endpoints (pure; exported for tests). */
export function endpointsFromSlices(slices: readonly V1EndpointSlice[], portName?: string): Partial<MeshEndpoint>[] {
  const out = new Map<string, Partial<MeshEndpoint>>();
  for (const s of slices) {
    if (s.addressType !== 'IPv4' && s.addressType !== 'IPv6') continue; // FQDN slices name no IPs
    const port = (portName ? s.ports?.find((p) => p.name === portName) : s.ports?.[0])?.port;
    if (port === undefined) continue;
    for (const e of s.endpoints ?? []) {
      const address = e.addresses?.[0];
      if (!address) continue;
      // Kubernetes: a nil `ready` means ready; nil `serving` means the value of ready; nil `terminating` means false.
      const ready = e.conditions?.ready ?? true;
      const serving = e.conditions?.serving ?? ready;
      const terminating = e.conditions?.terminating ?? false;
      out.set(`${address}:${port}`, { address, port, ...(e.zone ? { zone: e.zone } : {}), weight: 1, ready, serving, terminating });
    }
  }
  return [...out.values()].sort((a, b) => (a.address === b.address ? a.port! - b.port! : a.address! < b.address! ? -1 : 1));
}

export class EndpointSliceWatcher {
  private informer: (Informer<V1EndpointSlice> & ObjectCache<V1EndpointSlice>) | undefined;
  private resync: NodeJS.Timeout | undefined;
  private restart: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly last = new Map<string, string>();
  /** Lists issued (first one and every resync/restart), for /stats and tests. */
  lists = 0;

  constructor(private readonly kc: KubeConfig, private readonly sink: EndpointSink, private readonly opts: WatcherOptions) {}

  async start(): Promise<void> {
    await this.connect();
    const every = this.opts.resyncMs ?? 300_000;
    // Resync = a fresh list into a fresh cache (the ListWatch only relists when its resourceVersion
    // is lost); unchanged services push nothing.
    this.resync = setInterval(() => void this.connect().catch(() => undefined), every);
  }

  /** A new informer (list, then watch); the previous one stops once the new one has listed. */
  private async connect(): Promise<void> {
    if (this.stopped) return;
    const { DiscoveryV1Api, makeInformer } = await loadKubernetesClient();
    const api = this.kc.makeApiClient(DiscoveryV1Api);
    const ns = this.opts.namespace;
    let listed = false;
    const selector = `${SERVICE_LABEL} in (${[...new Set(this.opts.targets.map((t) => t.service))].join(',')})`;
    const informer = makeInformer<V1EndpointSlice>(
      this.kc,
      `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
      async () => {
        this.lists++;
        const list = await api.listNamespacedEndpointSlice({ namespace: ns, labelSelector: selector });
        listed = true;
        return list;
      },
      selector,
    );
    const changed = (s: V1EndpointSlice) => {
      if (this.informer !== informer) return;
      const svc = s.metadata?.labels?.[SERVICE_LABEL];
      for (const t of this.opts.targets) if (t.service === svc) this.publish(t);
    };
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    informer.on('error', (err) => {
      if (this.stopped || this.informer !== informer) return;
      this.opts.log?.('warn', `endpointslices: list/watch failed (${String((err as Error | undefined)?.message ?? err)}); relisting in 1s`);
      clearTimeout(this.restart);
      this.restart = setTimeout(() => void this.connect().catch(() => undefined), 1000);
    });
    const previous = this.informer;
    this.informer = informer;
    await informer.start();
    if (!listed) {
      // The API server is unreachable or refused: keep serving what we had (a retry is scheduled).
      this.informer = previous;
      await informer.stop();
      return;
    }
    await previous?.stop();
    this.publishAll();
  }

  /** The endpoints last published for a mesh service (to carry them over a mesh reload). */
  endpointsOf(meshService: string): Partial<MeshEndpoint>[] | undefined {
    const v = this.last.get(meshService);
    return v === undefined ? undefined : (JSON.parse(v) as Partial<MeshEndpoint>[]);
  }

  private publishAll(): void {
    for (const t of this.opts.targets) this.publish(t);
  }

  private publish(t: SliceTarget): void {
    if (!this.informer) return;
    const slices = this.informer.list(this.opts.namespace).filter((s) => s.metadata?.labels?.[SERVICE_LABEL] === t.service);
    const eps = endpointsFromSlices(slices, t.portName);
    const key = JSON.stringify(eps);
    if (this.last.get(t.meshService) === key) return;
    this.last.set(t.meshService, key);
    try {
      this.sink.setEndpoints(t.meshService, eps);
      this.opts.log?.('info', `endpointslices: ${t.meshService} <- ${t.service}: ${eps.length} endpoints`);
    } catch (e) {
      this.opts.log?.('warn', `endpointslices: ${t.meshService}: ${(e as Error).message}`);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resync) clearInterval(this.resync);
    if (this.restart) clearTimeout(this.restart);
    await this.informer?.stop();
  }
}
