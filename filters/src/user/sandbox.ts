import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Worker } from 'node:worker_threads';

// worker_threads (with its internal modules, ~6 ms of start-up on a quiet machine, 20-35
// under load) is required with the first user filter's worker, not when the proxy starts.
const workerThreads = (): typeof import('node:worker_threads') => createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');

/**
 * Where the worker's program (worker.ts) comes from. Compiled (dist/, the CLI, the
 * image): worker.js beside this file, loaded by URL. Running from TypeScript source
 * (tests, tsx): Node 20 cannot run worker.ts itself, and a TypeScript loader inside every
 * worker costs about a second per start, so worker.ts is transpiled once per process with
 * the TypeScript compiler (a devDependency, present wherever the sources run) and each
 * worker evaluates that text: the same module either way.
 */
type WorkerProgram = { readonly url: URL } | { readonly source: string };
let program: WorkerProgram | undefined;

export function workerProgram(): WorkerProgram {
  if (program !== undefined) return program;
  if (!import.meta.url.endsWith('.ts')) return (program = { url: new URL('./worker.js', import.meta.url) });
  const file = new URL('./worker.ts', import.meta.url);
  const ts = createRequire(import.meta.url)('typescript') as {
    transpileModule(src: string, o: { compilerOptions: Record<string, unknown>; fileName: string }): { outputText: string };
  };
  const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
    fileName: file.pathname,
    // CommonJS: an eval'd worker is a script with require(), not a module.
    compilerOptions: { module: 1 /* CommonJS */, target: 9 /* ES2022 */, esModuleInterop: true },
  });
  return (program = { source: outputText });
}

/**
 * One loaded version of a user filter, running in its own worker thread.
 *
 * Why a worker and not a `vm` context in the proxy's thread: a vm context shares the
 * proxy's heap and event loop, so a memory hog takes the proxy down with it and an
 * infinite loop can only be cut by vm's `timeout`, which starts a watchdog per call
 * (~26 µs measured, more than the message round trip) and does nothing for async code.
 * A worker has its own isolate with `resourceLimits` (out of memory kills the worker, not
 * us), can be terminated mid-loop, and when it retires `terminate()` frees its whole heap,
 * code included: nothing accumulates in a module cache. Inside the worker the module still
 * runs in a vm context (see worker.ts) so it sees only the filter API.
 *
 * Time budget: a sweeper fails calls older than the budget. If the worker has said nothing
 * since the late call was sent, it is stuck (a synchronous loop): it is terminated and
 * restarted with the same code; calls in flight fail per policy.
 */

export interface SandboxOptions {
  readonly source: string;
  readonly filename: string;
  /** Passed to the module as ctx.config. */
  readonly moduleConfig: unknown;
  readonly timeBudgetMs: number;
  readonly memoryLimitMb: number;
  /** Worker start + module evaluation. */
  readonly loadTimeoutMs: number;
  /** Restarts after crashes/hangs before the sandbox gives up. */
  readonly maxRestarts: number;
}

export interface LoadInfo {
  readonly hasRequest: boolean;
  readonly hasResponse: boolean;
  readonly probes: readonly unknown[];
}

export interface CallOutcome {
  /** The module's local reply, if it answered. */
  readonly reply: unknown;
  /** The view after the module's mutations. */
  readonly view: unknown;
}

export class SandboxError extends Error {
  constructor(readonly code: 'timeout' | 'crash' | 'thrown' | 'closed' | 'load', message: string) {
    super(message);
  }
}

interface Pending {
  readonly resolve: (o: CallOutcome) => void;
  readonly reject: (e: SandboxError) => void;
  /** When the call was handed to the worker (re-stamped for calls queued during a restart). */
  sentAt: number;
  readonly msg: string;
}

type State = 'starting' | 'ready' | 'dead' | 'closed';

export class Sandbox {
  private worker: Worker | undefined;
  private state: State = 'starting';
  private readonly pending = new Map<number, Pending>();
  /** Calls made while (re)starting; sent once the module is loaded. */
  private queued: number[] = [];
  private nextId = 1;
  private lastMessageAt = 0;
  private sweeper: NodeJS.Timeout | undefined;
  private restarts = 0;
  private info: LoadInfo | undefined;
  timeouts = 0;
  crashes = 0;
  /** Called when the sandbox crashed or hung (after in-flight calls were failed). */
  onTrouble: ((reason: string) => void) | undefined;
  /** console output of the module (rate-limited in the worker; `dropped` lines were not sent since the last one). */
  onLog: ((level: string, line: string, dropped: number) => void) | undefined;
  /** Called once when restarts are exhausted: every later call fails at once. */
  onDead: (() => void) | undefined;

  constructor(private readonly opts: SandboxOptions) {}

  get loadInfo(): LoadInfo | undefined {
    return this.info;
  }

  get alive(): boolean {
    return this.state === 'ready' || this.state === 'starting';
  }

  /** Starts the worker and evaluates the module; rejects with the reason on failure. */
  start(): Promise<LoadInfo> {
    return new Promise<LoadInfo>((resolve, reject) => {
      let settled = false;
      const p = workerProgram();
      const w = new (workerThreads().Worker)('url' in p ? p.url : p.source, {
        eval: !('url' in p),
        execArgv: [],
        env: {},
        argv: [],
        resourceLimits: {
          maxOldGenerationSizeMb: this.opts.memoryLimitMb,
          maxYoungGenerationSizeMb: Math.max(1, Math.min(16, Math.ceil(this.opts.memoryLimitMb / 4))),
          stackSizeMb: 4,
        },
        name: `pilotfish-filter:${this.opts.filename}`,
      });
      this.worker = w;
      w.unref();
      // Backstop only: the vm timeout inside the worker cuts a looping module first, with a better message.
      const limit = Math.ceil(this.opts.loadTimeoutMs * 1.5) + 500;
      const timer = setTimeout(() => fail(`load timed out after ${limit} ms`), limit);
      const fail = (reason: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.kill(w);
        if (this.state !== 'closed') this.state = 'dead';
        this.failAll(new SandboxError('load', reason));
        reject(new SandboxError('load', reason));
      };
      w.on('message', (m: unknown) => {
        this.lastMessageAt = performance.now();
        if (typeof m === 'string') return this.onResult(m);
        if (Array.isArray(m)) {
          for (const r of m as string[]) this.onResult(r);
          return;
        }
        const msg = m as { t: string; message?: string; level?: string; line?: string; dropped?: number } & LoadInfo;
        if (msg.t === 'loaded' && !settled) {
          settled = true;
          clearTimeout(timer);
          this.info = { hasRequest: msg.hasRequest, hasResponse: msg.hasResponse, probes: msg.probes };
          if (this.state === 'closed') {
            this.kill(w);
          } else {
            this.state = 'ready';
            this.flushQueue();
          }
          resolve(this.info);
        } else if (msg.t === 'load_error') {
          fail(`load failed: ${msg.message ?? 'unknown error'}`);
        } else if (msg.t === 'log') {
          this.onLog?.(msg.level ?? 'log', msg.line ?? '', msg.dropped ?? 0);
        }
      });
      w.on('error', (err: Error & { code?: string }) => {
        const reason = err.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? `out of memory (limit ${this.opts.memoryLimitMb} MB)`
          : `worker error: ${err.message}`;
        if (!settled) fail(reason);
        else this.trouble(w, reason);
      });
      w.on('exit', (code) => {
        if (!settled) fail(`worker exited with code ${code} while loading`);
        else this.trouble(w, `worker exited with code ${code}`);
      });
      w.postMessage({
        t: 'load',
        source: this.opts.source,
        filename: this.opts.filename,
        config: this.opts.moduleConfig,
        loadTimeoutMs: this.opts.loadTimeoutMs,
      });
    });
  }

  call(phase: 'req' | 'res', view: unknown, ctx: unknown): Promise<CallOutcome> {
    if (this.state === 'dead' || this.state === 'closed') {
      return Promise.reject(new SandboxError(this.state === 'closed' ? 'closed' : 'crash', `sandbox ${this.state}`));
    }
    const id = this.nextId++;
    const msg = `[${id},${JSON.stringify(phase)},${JSON.stringify(view)},${JSON.stringify(ctx)}]`;
    return new Promise<CallOutcome>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, sentAt: performance.now(), msg });
      if (this.state === 'ready') this.post(msg);
      else this.queued.push(id);
      if (this.sweeper === undefined) this.startSweeper();
    });
  }

  /** Stops the worker; calls in flight fail with 'closed'. */
  close(): void {
    if (this.state === 'closed') return;
    const w = this.worker;
    this.state = 'closed';
    this.failAll(new SandboxError('closed', 'sandbox closed'));
    if (w) this.kill(w);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Calls leave in batches: everything issued in one turn of the event loop goes as one
   * message (under load, per-message overhead dominates the cost of a call).
   */
  private outbox: string[] = [];

  private post(msg: string): void {
    if (this.outbox.length === 0) queueMicrotask(() => this.flush());
    this.outbox.push(msg);
  }

  private flush(): void {
    const b = this.outbox;
    this.outbox = [];
    if (this.state !== 'ready' || this.worker === undefined || b.length === 0) return;
    this.worker.postMessage(b.length === 1 ? b[0] : b);
  }

  private onResult(m: string): void {
    let parsed: unknown[];
    try {
      parsed = JSON.parse(m) as unknown[];
    } catch {
      return;
    }
    const id = parsed[0] as number;
    const p = this.pending.get(id);
    if (p === undefined) return; // already timed out
    this.pending.delete(id);
    if (parsed[1] === 1) p.resolve({ reply: parsed[2], view: parsed[3] });
    else p.reject(new SandboxError('thrown', String(parsed[2])));
    // The sweeper stops itself on its next tick when nothing is pending: not restarting a
    // timer per call keeps one-at-a-time traffic cheap.
  }

  private flushQueue(): void {
    const ids = this.queued;
    this.queued = [];
    const now = performance.now();
    for (const id of ids) {
      const p = this.pending.get(id);
      if (p) {
        p.sentAt = now;
        this.post(p.msg);
      }
    }
  }

  private startSweeper(): void {
    const every = Math.max(2, Math.ceil(this.opts.timeBudgetMs / 4));
    // Kept referenced: a call in flight is work the process must not exit under.
    this.sweeper = setInterval(() => this.sweep(), every);
  }

  private stopSweeper(): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private sweep(): void {
    const now = performance.now();
    const budget = this.opts.timeBudgetMs;
    let stuck = false;
    for (const [id, p] of this.pending) {
      // Calls queued during a restart are judged once the module is back.
      if (this.state !== 'ready') break;
      if (now - p.sentAt < budget) break; // insertion order: the rest are younger
      this.pending.delete(id);
      this.timeouts++;
      if (this.lastMessageAt < p.sentAt) stuck = true;
      p.reject(new SandboxError('timeout', `time budget of ${budget} ms exceeded`));
    }
    if (this.pending.size === 0) this.stopSweeper();
    if (stuck && this.worker) this.trouble(this.worker, `unresponsive for more than ${budget} ms (infinite loop?)`);
  }

  private failAll(e: SandboxError): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    this.queued = [];
    this.outbox = [];
    this.stopSweeper();
    for (const p of all) p.reject(e);
  }

  private kill(w: Worker): void {
    w.removeAllListeners('message');
    w.removeAllListeners('exit');
    w.removeAllListeners('error');
    w.on('error', () => {}); // late errors from a dying worker are expected
    void w.terminate().catch(() => {});
    if (this.worker === w) this.worker = undefined;
  }

  /** Crash or hang after a successful load: fail in-flight calls, restart with the same code. */
  private trouble(w: Worker, reason: string): void {
    if (this.state === 'closed' || this.worker !== w) return;
    this.crashes++;
    this.kill(w);
    this.failAll(new SandboxError('crash', reason));
    this.onTrouble?.(reason);
    if ((this.state as State) === 'closed') return; // onTrouble may have retired us
    if (this.restarts >= this.opts.maxRestarts) {
      this.state = 'dead';
      this.onDead?.();
      return;
    }
    this.restarts++;
    this.state = 'starting';
    this.start().catch(() => {
      /* state is 'dead' now; calls fail fast */
    });
  }
}
