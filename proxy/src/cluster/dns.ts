import { lookup } from 'node:dns/promises';
import type { Cluster, Endpoint, EndpointDiff } from '../../../config/src/index.js';
import { diffEndpoints, endpointKey, flattenLoadAssignment } from '../../../config/src/index.js';

/**
 * STRICT_DNS and LOGICAL_DNS clusters: resolve every endpoint's host name every
 * dns_refresh_rate and turn the answer into an endpoint diff (STRICT_DNS: every
 * address is a host; LOGICAL_DNS: only the first, and the connection pool follows it).
 */
export class DnsRefresher {
  private timer: NodeJS.Timeout | undefined;
  private current = new Map<string, Endpoint>();
  private stopped = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly apply: (diff: EndpointDiff) => void,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** First resolution; resolves with the initial endpoints (may be empty on failure). */
  async start(): Promise<Endpoint[]> {
    const eps = await this.resolve().catch((e) => {
      this.onError(e);
      return [];
    });
    this.current = new Map(eps.map((e) => [e.key, e]));
    this.schedule();
    return eps;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.resolve().then((eps) => {
        const diff = diffEndpoints(this.cluster.name, this.current, eps);
        if (diff.added.length || diff.removed.length || diff.changed.length) {
          this.current = new Map(eps.map((e) => [e.key, e]));
          this.apply(diff);
        }
      }, this.onError).finally(() => this.schedule());
    }, this.cluster.dnsRefreshRate);
    this.timer.unref();
  }

  private async resolve(): Promise<Endpoint[]> {
    const declared = this.cluster.loadAssignment ? flattenLoadAssignment(this.cluster.loadAssignment) : [];
    const family = this.cluster.dnsLookupFamily === 'V4_ONLY' ? 4 : this.cluster.dnsLookupFamily === 'V6_ONLY' ? 6 : 0;
    const out: Endpoint[] = [];
    for (const e of declared) {
      const hostname = e.address;
      const answers = await lookup(hostname, { all: true, family, order: this.cluster.dnsLookupFamily === 'V4_PREFERRED' ? 'ipv4first' : 'verbatim' });
      const chosen = this.cluster.type === 'LOGICAL_DNS' ? answers.slice(0, 1) : answers;
      for (const a of chosen) {
        out.push({ ...e, key: endpointKey(a.address, e.port), address: a.address, hostname: e.hostname || hostname });
      }
    }
    return out;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
