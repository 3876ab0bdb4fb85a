/**
 * The proxy's runtime seen from outside: a real node process whose event loop blocks
 * for 2.5 s at a time while allocating (so V8 collects garbage). The raw syscall
 * tracepoints see its main thread leave and re-enter epoll, the uprobes on
 * Heap::CollectGarbage bracket GC pauses, and the helper itself logs the blocked loop
 * while the process is stuck (here to a file, in the proxy to its stderr).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfFastPath } from '../src/fastpath.js';
import type { FastPathConfig } from '../src/config.js';
import { bpfUnavailable } from './helpers/bpf.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const why = await bpfUnavailable();
if (why) {
  t.plan(0, `skip: runtime probes: ${why}`);
} else {
  t.test('event-loop stalls and GC pauses of a node process, from outside it', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'pf-rt-'));
    const logPath = join(dir, 'helper.log');
    const logFd = openSync(logPath, 'a');
    const script = `
      const block = () => {
        const end = Date.now() + 2500;
        let junk = [];
        while (Date.now() < end) { junk.push({ n: Math.random() }); if (junk.length > 20000) junk = []; }
        setTimeout(block, 1000); // a second of ordinary life between blocks
      };
      setTimeout(block, 300);
      setInterval(() => {}, 20); // a lively loop in between
      console.log('READY');`;
    const target = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => { target.kill('SIGKILL'); closeSync(logFd); rmSync(dir, { recursive: true, force: true }); });
    await new Promise<void>((r) => target.stdout.once('data', () => r()));

    const config: FastPathConfig = {
      returnInterfaces: [], redirectPeers: [], mode: 'native', forward: 'fib', flowEvents: false, services: [],
      runtimeProbes: { stallMs: 100, logMs: 1000, pid: target.pid!, logFd },
    };
    const fp = await BpfFastPath.start(config, (l) => t.comment(l));
    t.teardown(() => fp.close());
    t.ok(fp.status().programs.includes('runtime_loop'), `programs: ${fp.status().programs.join(',')}`);
    t.ok(fp.status().programs.includes('runtime_gc'), 'this node binary has V8 symbols: GC probes attached');

    await sleep(6000);
    await fp.sync();
    const m = fp.metrics();
    t.ok(m.fastpath_runtime_loop_iterations_total! >= 20, `iterations ${m.fastpath_runtime_loop_iterations_total}`);
    t.ok(m.fastpath_runtime_loop_stalls_total! >= 1, `stalls ${m.fastpath_runtime_loop_stalls_total}`);
    t.ok(m.fastpath_runtime_loop_busy_max_seconds! >= 2.4 && m.fastpath_runtime_loop_busy_max_seconds! < 5, `longest iteration ${m.fastpath_runtime_loop_busy_max_seconds} s`);
    t.equal(m['fastpath_runtime_loop_busy_seconds_bucket{le="+Inf"}'], m.fastpath_runtime_loop_iterations_total, 'the histogram holds every iteration');
    t.ok(m['fastpath_runtime_loop_busy_seconds_bucket{le="0.00102"}']! >= 1, 'short iterations too');
    t.ok(m.fastpath_runtime_gc_total! >= 1, `GC pauses seen: ${m.fastpath_runtime_gc_total}, longest ${m.fastpath_runtime_gc_max_seconds} s`);
    const log = readFileSync(logPath, 'utf8');
    t.match(log, new RegExp(`pf-fastpathd: pid ${target.pid} event loop blocked for \\d+ ms`), 'the helper logged the blocked loop itself');
    t.match(log, /event loop answered again/, 'and its recovery');
  });
}
