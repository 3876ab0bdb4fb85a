/**
 * The Node half of the bridge: spawns native/pf_fastpathd.c and speaks its line
 * protocol. Requests are answered in order, so a FIFO of callbacks is the whole
 * state machine; "E " (XDP flow) and "F " (connection) lines are ring-buffer events
 * and arrive any time.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

export interface DaemonOptions {
  readonly binary: string;
  readonly launcher?: readonly string[];
  readonly onEvent?: (hex: string) => void;
  /** connection events (conn_events ring), hex */
  readonly onConnEvent?: (hex: string) => void;
  readonly startTimeoutMs?: number;
  /** Handed to the helper as its fd 3: where it writes runtime-probe stall lines itself (default: our stderr). */
  readonly logFd?: number;
}

export class DaemonError extends Error {
  constructor(readonly command: string, message: string) {
    super(`${command.split(' ').slice(0, 2).join(' ')}: ${message}`);
  }
}

type Pending = { readonly line: string; readonly resolve: (s: string) => void; readonly reject: (e: Error) => void };

export class Daemon {
  private readonly pending: Pending[] = [];
  private exited = false;
  private readonly exitPromise: Promise<void>;
  /** Errors of fire-and-forget writes, kept for metrics and logs. */
  errors = 0;
  lastError: string | undefined;
  ncpus = 0;

  private constructor(private readonly child: ChildProcessByStdio<Writable, Readable, Readable>, private readonly opts: DaemonOptions) {
    this.exitPromise = new Promise((resolve) => child.once('exit', () => {
      this.exited = true;
      for (const p of this.pending.splice(0)) p.reject(new DaemonError(p.line, 'helper exited'));
      resolve();
    }));
  }

  /** Starts the helper; rejects with its one-line reason if it cannot load the programs. */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    const argv = [...(opts.launcher ?? []), opts.binary];
    // fd 3: our stderr (or a test's file), so the helper's stall lines reach the log without our event loop
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe', opts.logFd ?? 2] }) as unknown as ChildProcessByStdio<Writable, Readable, Readable>;
    const d = new Daemon(child, opts);
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-2000); });
    child.stdin.on('error', () => { /* exit handler reports it */ });
    const lines = createInterface({ input: child.stdout });
    const first = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('helper did not start in time')), opts.startTimeoutMs ?? 15000);
      child.once('error', (e) => { clearTimeout(timer); reject(e); });
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`helper exited (${code})${stderr ? ': ' + stderr.trim().split('\n').pop() : ''}`)); });
      lines.once('line', (l) => { clearTimeout(timer); resolve(l); });
    }).catch((e: Error) => {
      child.kill('SIGKILL');
      throw e;
    });
    if (!first.startsWith('READY ')) {
      child.kill('SIGKILL');
      throw new Error(first.replace(/^FAIL /, ''));
    }
    d.ncpus = Number(first.split(' ')[2] ?? 0);
    lines.on('line', (l) => d.onLine(l));
    return d;
  }

  private onLine(line: string): void {
    if (line.startsWith('E ')) {
      this.opts.onEvent?.(line.slice(2));
      return;
    }
    if (line.startsWith('F ')) {
      this.opts.onConnEvent?.(line.slice(2));
      return;
    }
    if (line === 'BYE') return;
    const p = this.pending.shift();
    if (!p) return;
    if (line.startsWith('OK')) p.resolve(line.slice(3));
    else p.reject(new DaemonError(p.line, line.replace(/^ERR /, '')));
  }

  /** The helper's pid (launchers like `ip netns exec` exec in place, so it is the helper's own). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** One command, its answer (the text after "OK"). */
  request(line: string): Promise<string> {
    if (this.exited) return Promise.reject(new DaemonError(line, 'helper exited'));
    return new Promise((resolve, reject) => {
      this.pending.push({ line, resolve, reject });
      this.child.stdin.write(line + '\n');
    });
  }

  /** A write whose failure is counted, not awaited: the data path never waits on us. */
  fire(line: string): void {
    this.request(line).catch((e: Error) => {
      this.errors++;
      this.lastError = e.message;
    });
  }

  update(map: string, key: Buffer, value: Buffer): void {
    this.fire(`U ${map} ${key.toString('hex')} ${value.toString('hex')}`);
  }

  /**
   * Many updates of one map, packed key||value; sent as lines of at most 256 KiB of
   * hex (one syscall per entry on the other side, one reply per line).
   */
  updatePacked(map: string, entries: Buffer, entrySize: number): void {
    const per = Math.max(1, Math.floor(128 * 1024 / entrySize)) * entrySize;
    for (let i = 0; i < entries.length; i += per) this.fire(`B ${map} ${entries.subarray(i, i + per).toString('hex')}`);
  }

  delete(map: string, key: Buffer): void {
    this.fire(`D ${map} ${key.toString('hex')}`);
  }

  async lookup(map: string, key: Buffer): Promise<Buffer | undefined> {
    try {
      return Buffer.from(await this.request(`G ${map} ${key.toString('hex')}`), 'hex');
    } catch (e) {
      if (e instanceof DaemonError && /No such file/.test(e.message)) return undefined;
      throw e;
    }
  }

  async counters(): Promise<bigint[]> {
    return (await this.request('S')).trim().split(' ').filter(Boolean).map((n) => BigInt(n));
  }

  /** BPF_PROG_TEST_RUN of xdp_lb: verdict and the packet as the program left it. */
  async testRun(packet: Buffer, ifindex = 1): Promise<{ verdict: number; packet: Buffer }> {
    const [verdict, hex] = (await this.request(`T ${ifindex} ${packet.toString('hex')}`)).split(' ');
    return { verdict: Number(verdict), packet: Buffer.from(hex ?? '', 'hex') };
  }

  /** Detach everything and wait for the helper to go (SIGKILL after a grace period). */
  async close(graceMs = 3000): Promise<void> {
    if (this.exited) return;
    this.child.stdin.end('Q\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }
}
