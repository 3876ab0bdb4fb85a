/**
 * `pilotfish controlplane --config mesh.yaml --kubernetes NAMESPACE` as a real process:
 * endpoints from a (fake, real-HTTP) Kubernetes API server's EndpointSlices; and, with the
 * optional @kubernetes/client-node absent, one clear line and exit 1. "Absent" is made the
 * way Node sees an uninstalled package: a resolve hook answers ERR_MODULE_NOT_FOUND for it.
 */
import t from 'tap';
import * as http from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pilotfish } from '../../test-support/cli.js';
import { until } from '../../test-support/wait.js';

const LIST = readFileSync(new URL('./fixtures/endpointslices-list.json', import.meta.url), 'utf8');

/** Registers a resolve hook that makes @kubernetes/client-node look uninstalled. */
const NOT_INSTALLED = `data:text/javascript,${encodeURIComponent(`
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
export async function resolve(spec, ctx, next) {
  if (spec === '@kubernetes/client-node' || spec.startsWith('@kubernetes/client-node/')) {
    const e = new Error("Cannot find package '@kubernetes/client-node' imported from " + ctx.parentURL);
    e.code = 'ERR_MODULE_NOT_FOUND';
    throw e;
  }
  return next(spec, ctx);
}\`));`)}`;

function tempDir(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'pf-cp-k8s-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function meshFile(dir: string): string {
  const f = join(dir, 'mesh.yaml');
  writeFileSync(f, 'listeners: []\nservices:\n  - name: reviews-v1\n  - name: ratings-v1\n');
  return f;
}

/** `pilotfish ...` from source; `out.code` once it exited. */
function run(t: { teardown(f: () => void): void }, args: string[], env: NodeJS.ProcessEnv, imports: string[] = []) {
  const p = pilotfish(t, args, { env, imports });
  const out = {
    get stdout() { return p.stdout(); },
    get stderr() { return p.stderr(); },
    code: undefined as number | null | undefined,
  };
  void p.exited.then((c) => (out.code = c));
  return { child: p.child, out };
}

t.test('without the optional client library, --kubernetes fails in one line; the rest does not need it', async (t) => {
  const dir = tempDir(t);
  const mesh = meshFile(dir);
  const bad = run(t, ['controlplane', '--config', mesh, '--port', '0', '--kubernetes', 'demo'], {}, [NOT_INSTALLED]);
  await until('the control plane to exit', () => bad.out.code !== undefined, { timeoutMs: 60_000 });
  t.equal(bad.out.code, 1);
  const lines = bad.out.stderr.trim().split('\n');
  t.same(lines, ['pilotfish controlplane: --kubernetes needs the optional package @kubernetes/client-node, which is not installed (npm install @kubernetes/client-node)'], 'exactly one line');

  const ok = run(t, ['controlplane', '--config', mesh, '--port', '0'], {}, [NOT_INSTALLED]);
  await until('a file-fed control plane to listen without the library', () => /listening \d+/.test(ok.out.stdout), { timeoutMs: 60_000 });
  ok.child.kill('SIGTERM');
  await until('it to stop', () => ok.out.code !== undefined, { timeoutMs: 20_000 });
  t.equal(ok.out.code, 0);
});

t.test('--kubernetes NAMESPACE: endpoints from the EndpointSlices of the same-named Services', async (t) => {
  const dir = tempDir(t);
  const queries: string[] = [];
  const api = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    queries.push(`${url.pathname}${url.search}`);
    if (url.pathname !== '/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}');
      return;
    }
    if (url.searchParams.get('watch') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders(); // a watch that stays open with no events
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(LIST);
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { api.closeAllConnections(); api.close(() => r()); }));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{ name: fake, cluster: { server: "http://127.0.0.1:${(api.address() as AddressInfo).port}", insecure-skip-tls-verify: true } }]
users: [{ name: u, user: { token: test-token } }]
contexts: [{ name: c, context: { cluster: fake, user: u, namespace: demo } }]
current-context: c
`);
  const cp = run(t, ['controlplane', '--config', meshFile(dir), '--port', '0', '--kubernetes', 'demo'], { KUBECONFIG: kubeconfig, KUBERNETES_SERVICE_HOST: '' });
  await until('the control plane to publish both services', () => /reviews-v1 <- reviews-v1: \d+ endpoints/.test(cp.out.stderr) && /ratings-v1 <- ratings-v1: \d+ endpoints/.test(cp.out.stderr) && /listening \d+/.test(cp.out.stdout), { timeoutMs: 60_000, state: () => cp.out.stderr.slice(-2000) });
  t.match(cp.out.stderr, /endpoints from EndpointSlices in namespace demo/);
  const selectors = new Set(queries.map((q) => new URL(q, 'http://x').searchParams.get('labelSelector')));
  t.same([...selectors], ['kubernetes.io/service-name in (reviews-v1,ratings-v1)'], 'lists and watches only the mesh services\' slices');
  cp.child.kill('SIGTERM');
  await until('it to stop', () => cp.out.code !== undefined, { timeoutMs: 20_000 });
  t.equal(cp.out.code, 0, 'SIGTERM stops the watcher and the server');
});
