/** The traffic generator: `rps` requests per second to the frontend's sidecar, open loop. */
import * as http from 'node:http';
import type { Stats } from './stats.js';

export class TrafficGenerator {
  private timer: NodeJS.Timeout | undefined;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private inFlight = 0;
  private abandoned = false;
  private carry = 0;
  private last = performance.now();

  /**
   * `perRoute`: also record each backend call the frontend reports in its body (`calls`),
   * for a generator that does not share the frontend's process (containers).
   */
  constructor(private readonly port: number, private readonly stats: Stats, public rps: number, private readonly host = '127.0.0.1', private readonly perRoute = false) {}

  start(): void {
    this.last = performance.now();
    this.timer = setInterval(() => this.tick(), 20);
  }

  private tick(): void {
    const now = performance.now();
    this.carry += ((now - this.last) / 1000) * this.rps;
    this.last = now;
    while (this.carry >= 1) {
      this.carry -= 1;
      // Bounded concurrency: a stalled mesh shows up as lower throughput, not a pile of sockets.
      if (this.inFlight < 64) this.one();
    }
  }

  private one(): void {
    this.inFlight++;
    const t0 = performance.now();
    const done = (ok: boolean) => {
      this.inFlight--;
      // Requests cut off by our own shutdown are not the mesh's failures.
      if (!this.abandoned) this.stats.record('/ (frontend)', performance.now() - t0, ok);
    };
    const req = http.get({ host: this.host, port: this.port, path: '/', agent: this.agent, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      if (this.perRoute) res.on('data', (c: Buffer) => chunks.push(c));
      else res.resume();
      res.on('end', () => {
        done(res.statusCode === 200);
        if (this.perRoute && !this.abandoned) this.recordCalls(Buffer.concat(chunks).toString());
      });
      res.on('error', () => done(false));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => done(false));
  }

  private recordCalls(body: string): void {
    let calls: Record<string, { status?: number; version?: string; ms?: number }> | undefined;
    try {
      calls = (JSON.parse(body) as { calls?: typeof calls }).calls;
    } catch {
      return; // not the demo frontend's answer: the route row already counts it
    }
    for (const [route, c] of Object.entries(calls ?? {})) this.stats.record(route, c.ms ?? 0, c.status === 200, c.version);
  }

  /** Stops sending and waits (bounded) for requests in flight. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const end = Date.now() + 10_000;
    while (this.inFlight > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    this.abandoned = true;
    this.agent.destroy();
  }
}
