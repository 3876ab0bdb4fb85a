import t from 'tap';
import * as http from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { ControlPlane, EndpointSliceWatcher, endpointsFromSlices, loadAssignmentJson, parseMesh } from '../src/index.js';
import { until } from '../../test-support/wait.js';

// A real HTTP server playing the Kubernetes API with recorded responses: the list of
// EndpointSlices, then a watch stream of MODIFIED / ADDED / BOOKMARK / DELETED events.
const LIST = readFileSync(new URL('./fixtures/endpointslices-list.json', import.meta.url), 'utf8');
const EVENTS = readFileSync(new URL('./fixtures/endpointslices-watch.jsonl', import.meta.url), 'utf8').trim().split('\n');

async function fakeApiServer(t: { teardown(f: () => unknown): void }) {
  const state = { failLists: false, lists: 0, watches: 0, queries: [] as string[], watchRes: undefined as http.ServerResponse | undefined };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
      return;
    }
    state.queries.push(url.search);
    if (url.searchParams.get('watch') === 'true') {
      state.watches++;
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      state.watchRes = res;
      return;
    }
    state.lists++;
    if (state.failLists) {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'ServiceUnavailable', code: 503 }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(LIST);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return { port: (server.address() as AddressInfo).port, state };
}

function kubeconfig(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'c', cluster: 'fake', user: 'u', namespace: 'demo' }],
    currentContext: 'c',
  });
  return kc;
}


const health = (cp: ControlPlane, svc: string) => {
  const cla = loadAssignmentJson(cp.current.services.find((s) => s.name === svc)!) as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string } } }; health_status: string }[] }[] };
  return Object.fromEntries(cla.endpoints.flatMap((l) => l.lb_endpoints).map((e) => [e.endpoint.address.socket_address.address, e.health_status]));
};

t.test('list, watch, conditions -> health, deletes, resync', async (t) => {
  const api = await fakeApiServer(t);
  const cp = new ControlPlane();
  cp.setMesh(parseMesh({ listeners: [], services: [{ name: 'reviews-v1', endpoints: [] }, { name: 'reviews-v2', endpoints: [] }, { name: 'ratings-v1', endpoints: [] }] }));
  t.teardown(() => cp.close());
  const watcher = new EndpointSliceWatcher(kubeconfig(api.port), cp, {
    namespace: 'demo',
    resyncMs: 800,
    targets: [
      { meshService: 'reviews-v1', service: 'reviews-v1', portName: 'http' },
      { meshService: 'reviews-v2', service: 'reviews-v2' },
      { meshService: 'ratings-v1', service: 'ratings-v1' },
    ],
  });
  t.teardown(() => watcher.stop());
  await watcher.start();
  t.same(health(cp, 'reviews-v1'), { '10.0.0.1': 'HEALTHY', '10.0.0.2': 'HEALTHY' }, 'from the list');
  t.same(health(cp, 'ratings-v1'), { '10.0.1.1': 'HEALTHY' });
  t.match(api.state.queries[0], /labelSelector=kubernetes\.io%2Fservice-name(\+|%20)in(\+|%20)%28reviews-v1%2Creviews-v2%2Cratings-v1%29/, 'only the slices of the watched Services');

  await until('the watch', () => api.state.watchRes !== undefined);
  t.match(api.state.queries.at(-1), /watch=true/);
  t.match(api.state.queries.at(-1), /resourceVersion=100/, 'watch from the list\'s resourceVersion');
  for (const e of EVENTS) api.state.watchRes!.write(`${e}\n`);
  await until('the DELETED event', () => health(cp, 'ratings-v1')['10.0.1.1'] === undefined);
  t.same(health(cp, 'reviews-v1'), { '10.0.0.1': 'HEALTHY', '10.0.0.2': 'DRAINING' }, 'terminating but serving -> DRAINING');
  t.same(health(cp, 'reviews-v2'), { '10.0.2.1': 'HEALTHY', '10.0.2.2': 'UNHEALTHY' }, 'not ready -> UNHEALTHY');
  t.same(cp.current.services.find((s) => s.name === 'ratings-v1')!.endpoints, [], 'deleted slice -> no endpoints');

  const before = api.state.lists;
  await until('a resync relist', () => api.state.lists > before);
  t.pass(`relisted (${api.state.lists} lists)`);
  await until('the relist to restore the recorded list', () => health(cp, 'ratings-v1')['10.0.1.1'] === 'HEALTHY');

  // API server failing: relists fail, the last good endpoints keep serving
  api.state.failLists = true;
  const failedBefore = api.state.lists;
  await until('failed relists', () => api.state.lists >= failedBefore + 2);
  t.same(health(cp, 'reviews-v1'), { '10.0.0.1': 'HEALTHY', '10.0.0.2': 'HEALTHY' }, 'endpoints kept while the API server fails');
});

t.test('endpointsFromSlices: Kubernetes nil-condition rules, ports by name, FQDN slices skipped', async (t) => {
  const eps = endpointsFromSlices([
    { addressType: 'IPv4', endpoints: [{ addresses: ['10.1.0.1'] }, { addresses: ['10.1.0.2'], conditions: { ready: false } }, { addresses: ['10.1.0.3'], conditions: { ready: false, serving: true, terminating: true } }], ports: [{ name: 'metrics', port: 9090 }, { name: 'http', port: 8080 }] },
    { addressType: 'FQDN', endpoints: [{ addresses: ['example.com'] }], ports: [{ name: 'http', port: 80 }] },
  ], 'http');
  t.same(eps.map((e) => [e.address, e.port, e.ready, e.serving, e.terminating]), [
    ['10.1.0.1', 8080, true, true, false],
    ['10.1.0.2', 8080, false, false, false],
    ['10.1.0.3', 8080, false, true, true],
  ]);
});
