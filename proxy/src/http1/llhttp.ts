import v8 from 'node:v8';
import { createRequire } from 'node:module';

/**
 * llhttp, as undici ships it compiled to WebAssembly, with our own thin binding.
 *
 * Why this binding (measured on this VM, a 9-header GET, bench in docs/ARCHITECTURE.md):
 * - node's own native llhttp (`HTTPParser` of the internal `_http_common`) builds every
 *   header name and value as a JS string before the first callback (1.3–1.8 µs); it is
 *   an undocumented internal whose callback signatures changed between Node majors.
 * - undici's wasm reports each header as (offset, length) into the bytes we passed:
 *   0.8–1.0 µs with no string made, so strings are made only for headers someone reads
 *   and the head can be forwarded as the original bytes. It is the parser undici's
 *   client already runs in this process (no new dependency), in strict mode (no lenient
 *   flag is ever set), the same code on both sides of the proxy.
 *
 * Callbacks from wasm reach the parser that is executing through one module variable:
 * `execute` is never re-entered (callbacks only record, or pause the parser).
 */

const require = createRequire(import.meta.url);

export const ParserType = { Request: 1, Response: 2 } as const;
export type ParserType = (typeof ParserType)[keyof typeof ParserType];

/** llhttp_errno values this binding acts on. */
export const HPE_OK = 0;
export const HPE_PAUSED = 21;
export const HPE_PAUSED_UPGRADE = 22;

/** What a parser tells its owner. Offsets are into the chunk given to execute(). */
export interface ParserEvents {
  onMessageBegin(): void;
  onUrl(chunk: Buffer, start: number, end: number): void;
  onHeaderField(chunk: Buffer, start: number, end: number): void;
  onHeaderValue(chunk: Buffer, start: number, end: number): void;
  /** Returns 0, 1 (no body: a response to HEAD) or HPE_PAUSED (handle the head outside the parser). */
  onHeadersComplete(statusCode: number, upgrade: boolean, keepAlive: boolean): number;
  onBody(chunk: Buffer, start: number, end: number): void;
  /** Returns 0 or HPE_PAUSED (one message at a time: pipelined requests wait). */
  onMessageComplete(): number;
}

interface LlhttpExports {
  memory: WebAssembly.Memory;
  malloc(n: number): number;
  free(p: number): void;
  llhttp_alloc(type: number): number;
  llhttp_free(p: number): void;
  llhttp_execute(p: number, data: number, len: number): number;
  llhttp_finish(p: number): number;
  llhttp_resume(p: number): void;
  llhttp_resume_after_upgrade(p: number): void;
  llhttp_reset(p: number): void;
  llhttp_get_method(p: number): number;
  llhttp_get_http_major(p: number): number;
  llhttp_get_http_minor(p: number): number;
  llhttp_get_error_pos(p: number): number;
  llhttp_get_error_reason(p: number): number;
  llhttp_errno_name(e: number): number;
  llhttp_method_name(m: number): number;
  llhttp_should_keep_alive(p: number): number;
}

let current: Parser | undefined;

function instantiate(): LlhttpExports {
  const env = {
    wasm_on_message_begin: (_p: number) => { current!.events.onMessageBegin(); return 0; },
    wasm_on_url: (_p: number, at: number, len: number) => { const c = current!; const s = at - c.base; c.events.onUrl(c.chunk!, s, s + len); return 0; },
    wasm_on_status: () => 0,
    wasm_on_header_field: (_p: number, at: number, len: number) => { const c = current!; const s = at - c.base; c.events.onHeaderField(c.chunk!, s, s + len); return 0; },
    wasm_on_header_value: (_p: number, at: number, len: number) => { const c = current!; const s = at - c.base; c.events.onHeaderValue(c.chunk!, s, s + len); return 0; },
    wasm_on_headers_complete: (_p: number, status: number, upgrade: number, keepAlive: number) => current!.events.onHeadersComplete(status, upgrade === 1, keepAlive === 1),
    wasm_on_body: (_p: number, at: number, len: number) => { const c = current!; const s = at - c.base; c.events.onBody(c.chunk!, s, s + len); return 0; },
    wasm_on_message_complete: (_p: number) => current!.events.onMessageComplete(),
  };
  const mod = compileOnLiftoff(() => {
    try {
      return new WebAssembly.Module(require('undici/lib/llhttp/llhttp_simd-wasm.js') as BufferSource);
    } catch {
      return new WebAssembly.Module(require('undici/lib/llhttp/llhttp-wasm.js') as BufferSource);
    }
  });
  return new WebAssembly.Instance(mod, { env }).exports as unknown as LlhttpExports;
}

/**
 * Compiles llhttp on V8's baseline wasm compiler (Liftoff) only. Its state machine is one
 * huge function: when it gets hot, V8's optimizing tier compiles it on a background thread
 * with ~38 MB of compiler memory at once and keeps ~10 MB more code — the ~30 MB jump of RSS
 * in the first second of load. A module compiled under --liftoff-only stays on Liftoff
 * after the flag is reset (measured), so only this module pays (~0.65 µs per head); other
 * wasm (RE2 for safe_regex) keeps its optimized code. An explicit wasm tiering flag on the
 * node command line or in NODE_OPTIONS wins.
 */
function compileOnLiftoff(compile: () => WebAssembly.Module): WebAssembly.Module {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (flags.some((f) => /^--(no-)?(liftoff|liftoff-only|wasm-tier-up|wasm-dynamic-tiering)\b/.test(f))) return compile();
  v8.setFlagsFromString('--liftoff-only');
  try {
    return compile();
  } finally {
    v8.setFlagsFromString('--no-liftoff-only');
  }
}

let wasm: LlhttpExports | undefined;
/** Input buffer in wasm memory, shared by all parsers (execute is never re-entered); grows as needed. */
let inPtr = 0;
let inSize = 0;
let memView = new Uint8Array(0);
const methodNames: string[] = [];

/** Compiles and instantiates the parser now (a chain that will use it calls this at build time, not on its first request). */
export function warmLlhttp(): void {
  llhttp();
}

function llhttp(): LlhttpExports {
  if (wasm !== undefined) return wasm;
  wasm = instantiate();
  // llhttp's method codes (llhttp_method_name traps on a code it does not know).
  const methods = (require('undici/lib/llhttp/constants.js') as { METHODS: Record<string, number> }).METHODS;
  for (const [name, code] of Object.entries(methods)) methodNames[code] = name;
  return wasm;
}

function cString(x: LlhttpExports, p: number): string {
  if (p === 0) return '';
  const mem = new Uint8Array(x.memory.buffer);
  let e = p;
  while (mem[e] !== 0) e++;
  return Buffer.from(mem.buffer, p, e - p).toString('latin1');
}

/** One llhttp parser (one per connection). */
export class Parser {
  readonly ptr: number;
  /** The chunk being executed and its address in wasm memory (for the callbacks' offsets). */
  chunk: Buffer | undefined = undefined;
  base = 0;
  private freed = false;

  constructor(type: ParserType, readonly events: ParserEvents) {
    this.ptr = llhttp().llhttp_alloc(type);
  }

  /**
   * Parses `data`. Returns the llhttp errno (HPE_OK, HPE_PAUSED: call resume() then
   * execute the rest from `stoppedAt()`, HPE_PAUSED_UPGRADE, or an error). Allocates nothing.
   */
  execute(data: Buffer): number {
    const x = llhttp();
    const len = data.length;
    if (len > inSize) {
      if (inPtr !== 0) x.free(inPtr);
      inSize = Math.max(len, 16 * 1024);
      inPtr = x.malloc(inSize);
    }
    // Callbacks only record or pause; a nested execute would overwrite the shared input buffer.
    if (current !== undefined) throw new Error('llhttp: execute re-entered from a callback');
    // One view of wasm memory, renewed only when the memory grew (its buffer changes then).
    if (memView.buffer !== x.memory.buffer) memView = new Uint8Array(x.memory.buffer);
    memView.set(data, inPtr);
    this.chunk = data;
    this.base = inPtr;
    current = this;
    try {
      return x.llhttp_execute(this.ptr, inPtr, len);
    } finally {
      current = undefined;
      this.chunk = undefined;
    }
  }

  /** Where in the last executed chunk the parser stopped (paused or failed). */
  stoppedAt(): number {
    return llhttp().llhttp_get_error_pos(this.ptr) - this.base;
  }

  /** The end of input: a close-delimited response ends here; anything else incomplete is an error. */
  finish(): number {
    current = this;
    try {
      return llhttp().llhttp_finish(this.ptr);
    } finally {
      current = undefined;
    }
  }

  resume(): void {
    llhttp().llhttp_resume(this.ptr);
  }

  resumeAfterUpgrade(): void {
    llhttp().llhttp_resume_after_upgrade(this.ptr);
  }

  reset(): void {
    llhttp().llhttp_reset(this.ptr);
  }

  get method(): string {
    return methodNames[llhttp().llhttp_get_method(this.ptr)] ?? '';
  }

  get versionMinor(): number {
    return llhttp().llhttp_get_http_minor(this.ptr);
  }

  get versionMajor(): number {
    return llhttp().llhttp_get_http_major(this.ptr);
  }

  /** Whether the connection may carry another message after this one (version, Connection header). */
  shouldKeepAlive(): boolean {
    return llhttp().llhttp_should_keep_alive(this.ptr) === 1;
  }

  /** llhttp's reason for the last error, e.g. "Invalid header value char". */
  errorReason(): string {
    return cString(llhttp(), llhttp().llhttp_get_error_reason(this.ptr));
  }

  /** llhttp's name of an errno, e.g. "HPE_INVALID_HEADER_TOKEN" (node's codes are the same names). */
  static errnoName(errno: number): string {
    return cString(llhttp(), llhttp().llhttp_errno_name(errno));
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    llhttp().llhttp_free(this.ptr);
  }
}
