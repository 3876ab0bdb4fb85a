/**
 * The worker thread's program for one user filter version (see sandbox.ts, which starts it
 * by URL). It imports only Node built-ins: nothing of the proxy's module graph enters the
 * worker.
 *
 * Inside the worker, the user's module runs in a fresh `vm` context whose only globals are
 * the ECMAScript built-ins plus `module`, `exports` and a frozen `console`; string code
 * generation (eval, new Function) and WebAssembly are off. Every object the module sees is
 * created in its own realm (parsed by the context's JSON.parse), so it never holds an
 * outer-realm object whose constructor chain would lead to `process`.
 *
 * Protocol (main -> worker):
 *   {t:'load', source, filename, config, loadTimeoutMs}
 *   "<json [id, phase, view, ctx]>"           a call; phase 'req' | 'res' (or an array of them)
 * worker -> main:
 *   {t:'loaded', hasRequest, hasResponse, probes} | {t:'load_error', message} | {t:'log', level, line, dropped}
 *   "<json [id, 1, reply|null, view]>" | "<json [id, 0, message]>"   (or an array of them)
 */
import { parentPort, type MessagePort } from 'node:worker_threads';
import vm from 'node:vm';

/** What the main thread sends to load a module. */
export interface LoadMessage {
  readonly t: 'load';
  readonly source: string;
  readonly filename: string;
  readonly config: unknown;
  readonly loadTimeoutMs: number;
}

/** What the worker answers to a load. */
export interface LoadedMessage {
  readonly t: 'loaded';
  readonly hasRequest: boolean;
  readonly hasResponse: boolean;
  readonly probes: readonly unknown[];
}

export type WorkerMessage =
  | LoadedMessage
  | { readonly t: 'load_error'; readonly message: string }
  | { readonly t: 'log'; readonly level: string; readonly line: string; readonly dropped: number };

/** A user function, called with realm-local arguments. */
type UserFn = (view: unknown, ctx: unknown) => unknown;
/** The context realm's JSON functions: what user code receives is built by these. */
interface RealmJson {
  parse(text: string): unknown;
  stringify(value: unknown): string;
}

const LOG_LEVELS = ['log', 'info', 'warn', 'error', 'debug'] as const;
/** console lines per second that reach the proxy's log; the rest are counted. */
const LOG_PER_SECOND = 20;
const MAX_LINE = 2048;

export function describeError(e: unknown): string {
  try {
    if (e !== null && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
      const { name, message } = e as { name?: unknown; message: string };
      return (typeof name === 'string' && name !== '' ? `${name}: ` : '') + message;
    }
    return String(e);
  } catch {
    return 'unprintable error';
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

/** One loaded user module and the calls into it. */
class FilterWorker {
  private onRequest: UserFn | null = null;
  private onResponse: UserFn | null = null;
  private json: RealmJson | null = null;
  private moduleConfig: unknown = undefined;
  /** Results leave in batches: one message per turn of the worker's event loop. */
  private outbox: string[] = [];

  constructor(private readonly port: MessagePort) {}

  private post(m: WorkerMessage | string | string[]): void {
    this.port.postMessage(m);
  }

  /**
   * console output reaches the proxy's log, rate-limited here so a filter logging on every
   * call cannot flood the main thread with messages: LOG_PER_SECOND lines per second, the
   * rest counted and reported with the next line that gets through.
   */
  private logger(): (level: string) => (...args: unknown[]) => void {
    let windowStart = 0;
    let inWindow = 0;
    let dropped = 0;
    return (level) => (...args) => {
      const now = Date.now();
      if (now - windowStart >= 1000) {
        windowStart = now;
        inWindow = 0;
      }
      if (inWindow >= LOG_PER_SECOND) {
        dropped++;
        return;
      }
      inWindow++;
      let line: string;
      try {
        line = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
      } catch {
        line = '(unprintable)';
      }
      if (line.length > MAX_LINE) line = `${line.slice(0, MAX_LINE)}…`;
      try {
        this.post({ t: 'log', level, line, dropped });
        dropped = 0;
      } catch {
        // the port is closing: the line is lost with the worker
      }
    };
  }

  load(m: LoadMessage): LoadedMessage {
    const context = vm.createContext({}, { name: m.filename, codeGeneration: { strings: false, wasm: false } });
    // Realm-local helpers: everything handed to user code is built by these.
    vm.runInContext(
      'globalThis.module = { exports: {} }; globalThis.exports = module.exports; ' +
      'globalThis.console = {}; ' +
      'globalThis.__pf = { parse: JSON.parse, stringify: JSON.stringify };',
      context);
    const cons = vm.runInContext('console', context) as Record<string, unknown>;
    const log = this.logger();
    for (const level of LOG_LEVELS) cons[level] = log(level);
    vm.runInContext('Object.freeze(console);', context);
    const json = vm.runInContext('__pf', context) as RealmJson;
    this.json = json;
    vm.runInContext('delete globalThis.__pf', context);
    this.moduleConfig = json.parse(m.config === undefined ? '{}' : JSON.stringify(m.config));

    const wrapped = `(function (module, exports) {${m.source}\n})(module, module.exports);`;
    let script: vm.Script;
    try {
      script = new vm.Script(wrapped, { filename: m.filename });
    } catch (e) {
      throw new Error(`does not compile: ${describeError(e)}`);
    }
    script.runInContext(context, { timeout: m.loadTimeoutMs, breakOnSigint: false });

    const exp = vm.runInContext('module.exports', context) as Record<string, unknown> | null | undefined;
    const get = (k: string): UserFn | null => {
      const v = exp == null ? undefined : exp[k];
      return typeof v === 'function' ? (v as UserFn) : null;
    };
    this.onRequest = get('onRequest');
    this.onResponse = get('onResponse');
    if (this.onRequest === null && this.onResponse === null) throw new Error('module exports neither onRequest nor onResponse');
    let probes: unknown = exp == null ? undefined : exp['probe'];
    if (probes !== undefined && !Array.isArray(probes)) probes = [probes];
    // The probe list leaves the context as JSON: plain data only.
    const list = probes === undefined ? [] : (JSON.parse(json.stringify(probes)) as unknown[]);
    return { t: 'loaded', hasRequest: this.onRequest !== null, hasResponse: this.onResponse !== null, probes: list };
  }

  private send(s: string): void {
    if (this.outbox.length === 0) queueMicrotask(() => this.flush());
    this.outbox.push(s);
  }

  private flush(): void {
    const b = this.outbox;
    this.outbox = [];
    this.post(b.length === 1 ? b[0]! : b);
  }

  private reply(id: number, view: unknown, r: unknown): void {
    const json = this.json!;
    let out: string;
    try {
      out = `[${id},1,${r == null ? 'null' : json.stringify(r)},${json.stringify(view)}]`;
    } catch (e) {
      out = JSON.stringify([id, 0, `result not serialisable: ${describeError(e)}`]);
    }
    this.send(out);
  }

  call(msg: string): void {
    // Cheap split of the "[id," prefix: the rest is parsed in the context's realm.
    const id = Number(msg.slice(1, msg.indexOf(',')));
    try {
      if (this.json === null) throw new Error('no module loaded');
      const args = this.json.parse(msg) as [number, 'req' | 'res', unknown, Record<string, unknown>];
      const view = args[2];
      const ctx = args[3];
      ctx['config'] = this.moduleConfig;
      const fn = args[1] === 'req' ? this.onRequest : this.onResponse;
      const r = fn === null ? undefined : fn(view, ctx);
      if (isThenable(r)) {
        r.then((v) => this.reply(id, view, v), (e: unknown) => this.send(JSON.stringify([id, 0, describeError(e)])));
      } else {
        this.reply(id, view, r);
      }
    } catch (e) {
      this.send(JSON.stringify([id, 0, describeError(e)]));
    }
  }

  onMessage(m: unknown): void {
    if (typeof m === 'string') return this.call(m);
    if (Array.isArray(m)) {
      for (const c of m as string[]) this.call(c);
      return;
    }
    if (m !== null && typeof m === 'object' && (m as { t?: unknown }).t === 'load') {
      try {
        this.post(this.load(m as LoadMessage));
      } catch (e) {
        this.post({ t: 'load_error', message: describeError(e) });
      }
    }
  }
}

// Runs only as a worker's entry point; importing the module elsewhere (types, tests) does nothing.
if (parentPort !== null) {
  const w = new FilterWorker(parentPort);
  parentPort.on('message', (m: unknown) => w.onMessage(m));
}
