/**
 * Envoy's command line, as Istio's pilot-agent runs its proxy: the exact argument list it
 * builds (istio/istio pkg/envoy/proxy.go `args()` plus the log flags of NewProxy) starts
 * pilotfish, the flags that matter act, the rest are named in one warning line.
 */
import t from 'tap';
import fc from 'fast-check';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Diagnostics } from '../../config/src/index.js';
import { envoyBootstrapJson, envoyLogLevel, isEnvoyInvocation, parseEnvoyArgs } from '../src/envoy-command.js';
import { protoMerge } from '../src/proto-merge.js';
import { UsageError } from '../src/args.js';
import { until } from '../../test-support/wait.js';

const ROOT = join(import.meta.dirname, '../..');

/** What pilot-agent passes (drain 45 s, IPv4 node, concurrency 2, Istio's default log flags). */
function pilotAgentArgs(config: string): string[] {
  return [
    '-c', config,
    '--drain-time-s', '45',
    '--drain-strategy', 'immediate',
    '--local-address-ip-version', 'v4',
    '--file-flush-interval-msec', '1000',
    '--disable-hot-restart',
    '--allow-unknown-static-fields',
    '-l', 'warning',
    '--component-log-level', 'misc:error',
    '--concurrency', '2',
  ];
}

t.test('pilot-agent\'s argument list parses as Envoy reads it', async (t) => {
  const a = parseEnvoyArgs(pilotAgentArgs('etc/istio/proxy/envoy-rev.json'));
  t.equal(a.values.get('--config-path'), 'etc/istio/proxy/envoy-rev.json');
  t.equal(a.values.get('--drain-time-s'), '45');
  t.equal(a.values.get('--log-level'), 'warning');
  t.equal(a.values.get('--disable-hot-restart'), true);
  t.equal(a.values.get('--concurrency'), '2');
  t.ok(isEnvoyInvocation('-c'));
  t.ok(isEnvoyInvocation('--config-path=/x'));
  t.notOk(isEnvoyInvocation('proxy'));
  t.notOk(isEnvoyInvocation('--version'), 'pilotfish --version stays pilotfish\'s');
});

t.test('Envoy\'s parser rules: --flag=value, repeated multi flags, unknown flags and missing values refused', async (t) => {
  const a = parseEnvoyArgs(['--config-path=/etc/envoy.yaml', '--stats-tag', 'a:b', '--stats-tag=c:d', '--', '--whatever']);
  t.equal(a.values.get('--config-path'), '/etc/envoy.yaml');
  t.same(a.values.get('--stats-tag'), ['a:b', 'c:d']);
  t.throws(() => parseEnvoyArgs(['-c', 'x', '--no-such-flag']), new UsageError('unknown Envoy flag "--no-such-flag"'));
  t.throws(() => parseEnvoyArgs(['-c']), new UsageError('--config-path needs a value'));
  t.throws(() => parseEnvoyArgs(['--disable-hot-restart=1']), new UsageError('--disable-hot-restart takes no value'));
  t.equal(envoyLogLevel('warn'), 'warning');
  t.equal(envoyLogLevel('TRACE'), 'trace');
  t.throws(() => envoyLogLevel('verbose'), /--log-level: expected one of/);
});

t.test('property: any order of value flags parses to the last value given for each', async (t) => {
  const flags = ['--drain-time-s', '--concurrency', '--service-node', '--log-level', '--base-id'];
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom(...flags), fc.string({ minLength: 1 }).filter((s) => !s.startsWith('-')), fc.boolean()), { maxLength: 12 }), (pairs) => {
      const argv = pairs.flatMap(([f, v, joined]) => (joined ? [`${f}=${v}`] : [f, v]));
      const a = parseEnvoyArgs(argv);
      const last = new Map(pairs.map(([f, v]) => [f, v]));
      for (const [f, v] of last) if (a.values.get(f) !== v) return false;
      return a.given.length === pairs.length;
    }),
  );
  t.pass('held for every generated command line');
});

t.test('--config-yaml merges over -c as protobuf MergeFrom does; --service-* override the node', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-envoy-args-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'envoy-rev.json');
  writeFileSync(file, JSON.stringify({ node: { id: 'a', cluster: 'c', metadata: { LABELS: { app: 'x' } } }, static_resources: { clusters: [{ name: 'one' }] } }));
  const diag = new Diagnostics();
  const json = envoyBootstrapJson(parseEnvoyArgs(['-c', file, '--config-yaml', 'node: { metadata: { MESH_ID: m } }\nstaticResources: { clusters: [{ name: two }] }', '--service-zone', 'z1']), diag);
  t.same(json, {
    node: { id: 'a', cluster: 'c', metadata: { LABELS: { app: 'x' }, MESH_ID: 'm' }, locality: { zone: 'z1' } },
    staticResources: { clusters: [{ name: 'one' }, { name: 'two' }] },
  });
  t.same(diag.errors, []);
  t.throws(() => envoyBootstrapJson(parseEnvoyArgs(['--drain-time-s', '1']), new Diagnostics()), /at least one of --config-path/);
});

t.test('property: protoMerge — {} is neutral, scalars from the override win, repeated fields append', async (t) => {
  const json = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: 'small' }, fc.integer(), fc.string(), fc.boolean(), fc.array(tie('value'), { maxLength: 3 }), fc.dictionary(fc.constantFrom('a', 'b', 'c_d', 'eF'), tie('value'), { maxKeys: 3 })),
  })).value;
  const object = fc.dictionary(fc.constantFrom('a', 'b', 'c_d', 'eF'), json, { maxKeys: 4 });
  fc.assert(fc.property(object, (v) => JSON.stringify(protoMerge({}, v)) === JSON.stringify(v) && JSON.stringify(protoMerge(v, {})) === JSON.stringify(v)));
  fc.assert(fc.property(fc.array(fc.integer()), fc.array(fc.integer()), (a, b) => JSON.stringify(protoMerge({ x: a }, { x: b })) === JSON.stringify({ x: [...a, ...b] })));
  fc.assert(fc.property(fc.integer(), fc.integer(), (a, b) => (protoMerge({ x: { y: a, z: 1 } }, { x: { y: b } }) as { x: { y: number; z: number } }).x.y === b));
  t.same(protoMerge({ drainTime: 1, node: { id: 'a' } }, { drain_time: 2 }), { node: { id: 'a' }, drain_time: 2 }, 'camelCase and snake_case name one field');
});

t.test('a pilotfish process started with pilot-agent\'s exact flags serves, writes its admin address, names the flags without effect', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-envoy-cmd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bootstrap = join(dir, 'envoy-rev.json');
  writeFileSync(bootstrap, JSON.stringify({
    node: { id: 'sidecar~198.18.0.1~p.default~default.svc.cluster.local', cluster: 'p.default' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [{
        name: 'hello',
        address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          stat_prefix: 'hello',
          route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: 'from pilotfish' } } }] }] },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
        } }] }],
      }],
    },
  }));
  const adminFile = join(dir, 'admin-address');
  const args = [...pilotAgentArgs(bootstrap), '--admin-address-path', adminFile, '--log-path', join(dir, 'proxy.log'), '-l', 'info'];
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/src/entry.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  t.teardown(async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const log = () => (existsSync(join(dir, 'proxy.log')) ? readFileSync(join(dir, 'proxy.log'), 'utf8') : '');
  await until('the admin address file', () => existsSync(adminFile) || child.exitCode !== null, { timeoutMs: 30_000, state: () => out + log() });
  t.equal(child.exitCode, null, 'running', { output: out + log() });
  const admin = readFileSync(adminFile, 'utf8');
  t.match(admin, /^127\.0\.0\.1:\d+$/, '--admin-address-path holds ip:port');
  const listeners = (await (await fetch(`http://${admin}/listeners?format=json`)).text());
  const port = /127\.0\.0\.1:(\d+)/.exec(listeners.replace(admin, ''))?.[1];
  t.ok(port, `the listener's bound port is listed: ${listeners}`);
  const res = await fetch(`http://127.0.0.1:${port}/`);
  t.equal(await res.text(), 'from pilotfish', 'the bootstrap from -c serves');
  // pilot-agent's readiness probe (pilot/cmd/pilot-agent/status): these two stats, usedonly, from the admin port.
  const ready = await (await fetch(`http://${admin}/stats?usedonly&filter=^(server.state|listener_manager.workers_started)`)).text();
  t.same(ready.trim().split('\n').sort(), ['listener_manager.workers_started: 1', 'server.state: 0'], 'the readiness stats pilot-agent reads say LIVE');
  const warning = log().split('\n').find((l) => l.includes('envoy flags accepted without effect'));
  t.ok(warning, 'one warning line for the flags without effect (written to --log-path)');
  t.match(warning, /--file-flush-interval-msec.*--component-log-level.*--concurrency/);
  t.notMatch(warning, /--drain-time-s|--config-path|--disable-hot-restart/, 'flags that act or already hold are not in it');
  const quit = await fetch(`http://${admin}/quitquitquit`, { method: 'POST' });
  t.equal(quit.status, 200);
  t.equal(await exited, 0, '/quitquitquit exits cleanly, as pilot-agent expects');
});
