/**
 * Network namespaces joined by veth pairs, for integration tests and the benchmark.
 * Addresses come only from 198.18.0.0/15. Every name carries a per-run suffix and
 * destroy() removes all of it (deleting a namespace deletes its veth ends).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { sh, shQuiet } from './bpf.js';

export class Topology {
  readonly namespaces: string[] = [];
  private readonly procs: ChildProcess[] = [];

  constructor(readonly id: string) {}

  ns(role: string): string {
    const name = `pf${role}-${this.id}`;
    sh('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** A veth pair between two namespaces with an address (CIDR) on each end. */
  link(a: string, aIf: string, aAddr: string, b: string, bIf: string, bAddr: string): void {
    const tmp = `pfv${Math.floor(Math.random() * 1e9).toString(36)}`;
    sh('ip', ['link', 'add', tmp, 'type', 'veth', 'peer', 'name', `${tmp}p`]);
    sh('ip', ['link', 'set', tmp, 'netns', a, 'name', aIf]);
    sh('ip', ['link', 'set', `${tmp}p`, 'netns', b, 'name', bIf]);
    sh('ip', ['-n', a, 'addr', 'add', aAddr, 'dev', aIf]);
    sh('ip', ['-n', b, 'addr', 'add', bAddr, 'dev', bIf]);
    sh('ip', ['-n', a, 'link', 'set', aIf, 'up']);
    sh('ip', ['-n', b, 'link', 'set', bIf, 'up']);
    // veth leaves TCP/UDP checksums to "hardware" (CHECKSUM_PARTIAL); an XDP program
    // sees the unfinished sum and a redirected frame keeps it. Real NICs hand XDP
    // complete checksums, so make the veth ends behave like one.
    this.exec(a, 'ethtool', ['-K', aIf, 'tx', 'off']);
    this.exec(b, 'ethtool', ['-K', bIf, 'tx', 'off']);
  }

  ip(ns: string, ...args: string[]): string {
    return sh('ip', ['-n', ns, ...args]);
  }

  exec(ns: string, cmd: string, args: string[]): string {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
  }

  sysctl(ns: string, kv: string): void {
    this.exec(ns, 'sysctl', ['-qw', kv]);
  }

  /** A long-running process in a namespace; killed by destroy(). */
  spawn(ns: string, cmd: string, args: string[]): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.procs.push(p);
    return p;
  }

  destroy(): void {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const ns of this.namespaces.splice(0)) shQuiet('ip', ['netns', 'del', ns]);
  }
}

interface Lines { readonly seen: string[]; readonly waiters: Set<(l: string) => void>; stderr: string }
const lineState = new WeakMap<ChildProcess, Lines>();

/** One reader per process, so that several waiters never race for the same line. */
function lines(p: ChildProcess): Lines {
  let st = lineState.get(p);
  if (!st) {
    const s: Lines = { seen: [], waiters: new Set(), stderr: '' };
    st = s;
    lineState.set(p, s);
    createInterface({ input: p.stdout! }).on('line', (l) => {
      s.seen.push(l);
      for (const w of [...s.waiters]) w(l);
    });
    p.stderr?.on('data', (b: Buffer) => { s.stderr = (s.stderr + b.toString()).slice(-2000); });
  }
  return st;
}

/** Resolves with the first stdout line matching `re`, including lines already printed. */
export function waitLine(p: ChildProcess, re: RegExp, timeoutMs = 10_000): Promise<string> {
  const st = lines(p);
  const early = st.seen.find((l) => re.test(l));
  if (early !== undefined) return Promise.resolve(early);
  return new Promise((resolve, reject) => {
    const done = (): void => { clearTimeout(timer); st.waiters.delete(w); p.off('exit', onExit); };
    const w = (l: string): void => { if (re.test(l)) { done(); resolve(l); } };
    const onExit = (code: number | null): void => {
      // let stdout drain first: the line may still be in flight
      setTimeout(() => {
        if (!st.waiters.has(w)) return;
        done();
        reject(new Error(`process exited (${code}) before ${re}; stdout: ${st.seen.slice(-3).join(' | ')}; stderr: ${st.stderr}`));
      }, 200);
    };
    const timer = setTimeout(() => { done(); reject(new Error(`timed out waiting for ${re}; stderr: ${st.stderr}`)); }, timeoutMs);
    st.waiters.add(w);
    p.on('exit', onExit);
  });
}
