/** startFastPath's choices, the no-op twin, the CLI, and that close() leaves nothing behind. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { startFastPath, runFastPathCommand, type FastPathConfig } from '../src/index.js';
import { BpfFastPath } from '../src/fastpath.js';
import { bpfUnavailable, uniq } from './helpers/bpf.js';
import { Topology } from './helpers/netns.js';
import { until } from '../../test-support/wait.js';

const base: FastPathConfig = { returnInterfaces: [], redirectPeers: [], mode: 'native', forward: 'fib', flowEvents: false, services: [] };

t.test('no config, or mode off: a no-op that says why in one line', async (t) => {
  for (const [cfg, why] of [[undefined, /no pilotfish.fastpath/], [{ ...base, interface: 'x', mode: 'off' as const }, /disabled by config/]] as const) {
    const lines: string[] = [];
    const fp = await startFastPath(cfg, (l) => lines.push(l));
    t.match(fp.status(), { active: false, mode: 'noop', reason: why, programs: [] });
    t.equal(lines.length, 1);
    t.match(lines[0], /^fastpath: inactive: /);
    fp.applyEndpointDiff({ cluster: 'c', added: [], removed: [], changed: [] });
    t.same(fp.metrics(), { fastpath_active: 0 });
    t.equal(await fp.originalDestination('127.0.0.1', 1), undefined);
    await fp.close();
  }
});

t.test('a missing interface makes it fall back, with the reason', async (t) => {
  const why = await bpfUnavailable();
  if (why) return t.plan(0, `skip: ${why}`);
  const lines: string[] = [];
  const fp = await startFastPath({ ...base, interface: `pfnone${uniq()}` }, (l) => lines.push(l));
  t.equal(fp.status().active, false);
  t.match(fp.status().reason, /BPF unavailable: .*No such device/);
  t.equal(lines.length, 1);
  await fp.close();
});

t.test('close() detaches; so does the helper dying', async (t) => {
  const why = await bpfUnavailable();
  if (why) return t.plan(0, `skip: ${why}`);
  const topo = new Topology(uniq());
  t.teardown(() => topo.destroy());
  const a = topo.ns('la');
  topo.link(a, 'e0', '198.18.9.1/24', topo.ns('lb'), 'e1', '198.18.9.2/24');
  const cfg: FastPathConfig = { ...base, interface: 'e0', launcher: ['ip', 'netns', 'exec', a] };
  const xdpOn = () => /prog\/xdp/.test(topo.ip(a, '-d', 'link', 'show', 'e0'));

  const fp = await startFastPath(cfg, () => {});
  t.match(fp.status(), { active: true, mode: 'xdp-native', interface: 'e0', programs: ['xdp_lb'] });
  t.ok(xdpOn(), 'attached');
  await fp.close();
  t.notOk(xdpOn(), 'detached by close()');
  t.equal(fp.status().active, false);

  const fp2 = await startFastPath(cfg, () => {});
  t.ok(xdpOn());
  t.ok(fp2 instanceof BpfFastPath);
  const pid = (fp2 as BpfFastPath).daemon.pid!;
  t.match(readFileSync(`/proc/${pid}/comm`, 'utf8'), /pf-fastpathd/, 'helper running');
  process.kill(pid, 'SIGKILL');
  // the link goes when the kernel has reaped the helper and closed its fds
  await until('the XDP link to go with the killed helper', () => !xdpOn() && !fp2.status().active, { intervalMs: 50 });
  t.notOk(xdpOn(), 'BPF links die with their owner');
  t.equal(fp2.status().active, false);
  t.match(fp2.status().reason, /exited/);
  await fp2.close();
});

t.test('CLI', async (t) => {
  const out: string[] = [];
  t.equal(await runFastPathCommand(['--help'], (s) => out.push(s)), 0);
  t.match(out.join('\n'), /usage: pilotfish fastpath/);
  t.equal(await runFastPathCommand(['bogus'], () => {}), 2);
  const status: string[] = [];
  const code = await runFastPathCommand(['status'], (s) => status.push(s));
  const why = await bpfUnavailable();
  t.equal(code, why ? 1 : 0, status.join(' | '));
  t.match(status[status.length - 1], why ? /unavailable/ : /available/);
});
