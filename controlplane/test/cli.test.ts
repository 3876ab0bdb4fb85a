import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { XdsClient } from '../../xds-client/src/index.js';
import { RecordingSink } from '../../xds-client/test/helpers.js';
import { until } from '../../test-support/wait.js';

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/cli.ts');
const script = `import(${JSON.stringify(cli)}).then((m) => m.runControlPlaneCommand(process.argv.slice(1))).then((c) => process.exit(c))`;

function run(args: string[]): { child: ChildProcess; err: () => string; done: Promise<{ code: number | null; out: string; err: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', script, '--', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const done = new Promise<{ code: number | null; out: string; err: string }>((resolve) => child.on('exit', (code) => resolve({ code, out, err })));
  return { child, err: () => err, done };
}

const dir = mkdtempSync(path.join(tmpdir(), 'pf-cp-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('--help', async (t) => {
  const r = await run(['--help']).done;
  t.equal(r.code, 0);
  t.match(r.out, /Usage: pilotfish controlplane --config/);
});

t.test('errors are one line naming the field', async (t) => {
  const r1 = await run(['--port', 'x', '--config', 'm.yaml']).done;
  t.equal(r1.code, 2);
  t.equal(r1.err, 'pilotfish controlplane: --port: must be a port number 0..65535, got x\n');
  const f = path.join(dir, 'bad.yaml');
  writeFileSync(f, 'services:\n  - name: web\n    endpoints:\n      - {address: 10.0.0.1, port: 0}\n');
  const r2 = await run(['--config', f]).done;
  t.equal(r2.code, 2);
  t.equal(r2.err, `pilotfish controlplane: ${f}: services[0].endpoints[0].port: must be an integer 1..65535\n`);
  const r3 = await run([]).done;
  t.equal(r3.err, 'pilotfish controlplane: --config: is required (see --help)\n');
});

t.test('serves the file and pushes only what an edit changed', async (t) => {
  const f = path.join(dir, 'mesh.yaml');
  const yaml = (eps: string) => `listeners:\n  - {name: ingress, port: 10000, routes: [{prefix: /, service: web}]}\nservices:\n  - name: web\n    endpoints: [${eps}]\n  - name: api\n    endpoints: [{address: 10.0.9.1, port: 81}]\n`;
  writeFileSync(f, yaml('{address: 10.0.0.1, port: 80}'));
  const p = run(['--config', f, '--port', '0', '--address', '127.0.0.1']);
  t.teardown(() => {
    p.child.kill('SIGTERM');
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('control plane did not start')), 60_000);
    p.child.stdout!.on('data', (d: Buffer) => {
      const m = /listening (\d+)/.exec(d.toString());
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  const sink = new RecordingSink();
  const client = new XdsClient({ node: { id: 'cli-test', cluster: 'c', metadata: {} }, servers: [{ address: '127.0.0.1', port }], apiType: 'DELTA_GRPC', sink });
  client.start();
  t.teardown(() => client.stop());
  await sink.until(() => sink.clusters.has('web') && sink.clusters.has('api') && sink.listeners.has('ingress'));
  const before = sink.calls.length;
  const edsBefore = client.stats()['eds.update_success'] as number;
  const cdsBefore = client.stats()['cds.update_success'] as number;
  writeFileSync(f, yaml('{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}'));
  await sink.until(() => sink.endpointKeys('web').length === 2);
  t.same(sink.ops().slice(before), ['applyEndpointDiff', 'commit']);
  t.equal(client.stats()['eds.update_success'], edsBefore + 1, 'one EDS response');
  t.equal(client.stats()['cds.update_success'], cdsBefore, 'no CDS response');
  const eds = client.configDump().find((d) => d.typeUrl.endsWith('ClusterLoadAssignment'))!;
  t.same(eds.resources.map((r) => r.name).sort(), ['api', 'web']);

  // a bad edit keeps the last good mesh serving
  writeFileSync(f, 'services: [{name: web, lb: nope}]\n');
  await until('the control plane to report the bad edit', () => /keeping the last good mesh/.test(p.err()), { state: () => p.err() });
  t.same(sink.endpointKeys('web'), ['10.0.0.1:80', '10.0.0.2:80']);
  p.child.kill('SIGTERM');
  const r = await p.done;
  t.equal(r.code, 0);
  t.match(r.err, /services\[0\]\.lb: must be one of .* \(keeping the last good mesh\)/);
});
