/**
 * The xDS client driving the real proxy (ProxyServer as the ConfigSink, in-process) from
 * our control plane, with HTTP traffic through it while endpoints scale, drain, and the
 * control plane goes away and comes back. Zero failed requests is the bar.
 */
import t from 'tap';
import * as http from 'node:http';
import { Diagnostics, decodeBootstrap } from '../config/src/index.js';
import { ControlPlane, parseMesh, type MeshEndpoint } from '../controlplane/src/index.js';
import { XdsClient, TYPE_URLS, type ApiType } from '../xds-client/src/index.js';
import { Logger, startProxy } from '../proxy/src/index.js';
import { httpGet, namedUpstream as upstream } from '../test-support/net.js';
import { until } from '../test-support/wait.js';

let agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const get = (port: number) => httpGet(port, { agent });

/** The old server's port may take a moment to be released. */
async function listenRetrying(cp: ControlPlane, port: number): Promise<void> {
  await until(`the control plane to listen again on ${port}`, async () => {
    await cp.listen(port); // throws EADDRINUSE until the old server has let go
    return true;
  }, { intervalMs: 100 });
}


for (const apiType of ['DELTA_GRPC', 'GRPC'] as ApiType[]) {
  t.test(`${apiType}: scale, drain and lose the control plane under load without a failed request`, async (t) => {
    agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const ports = [await upstream(t, 'u1'), await upstream(t, 'u2'), await upstream(t, 'u3')];
    const ep = (i: number, extra: Partial<MeshEndpoint> = {}) => ({ address: '127.0.0.1', port: ports[i]!, zone: 'a', ...extra });
    const mesh = (eps: Partial<MeshEndpoint>[]) =>
      parseMesh({ listeners: [{ name: 'ingress', address: '127.0.0.1', port: 0, routes: [{ prefix: '/', service: 'web' }] }], services: [{ name: 'web', leds: apiType === 'DELTA_GRPC', endpoints: eps }] });

    let cp = new ControlPlane();
    cp.setMesh(mesh([ep(0)]));
    const cpPort = await cp.listen(0);
    t.teardown(() => cp.close());

    const diag = new Diagnostics();
    const bootstrap = decodeBootstrap({ node: { id: 'proxy-1', cluster: 'e2e' }, static_resources: {} }, diag)!;
    const proxy = await startProxy(bootstrap, { log: new Logger('error'), drainTimeMs: 200, onQuit: () => undefined });
    t.teardown(() => proxy.stop(0));
    const client = new XdsClient({ node: bootstrap.node, servers: [{ address: '127.0.0.1', port: cpPort }], apiType, sink: proxy.server, backoff: { baseMs: 50, maxMs: 200 } });
    client.start();
    t.teardown(() => client.stop());

    await until('listener', () => proxy.server.boundPorts.has('ingress'));
    const port = proxy.server.boundPorts.get('ingress')!;
    await until('first route', async () => (await get(port)).body === 'u1');

    // load: 4 workers until told to stop
    let stop = false;
    let failures = 0;
    let total = 0;
    const seen = new Map<string, number>();
    const failed: string[] = [];
    // Requests completed per worker: windows are counted in requests, not milliseconds,
    // so a slow machine only makes them longer.
    const done = [0, 0, 0, 0];
    const everyWorker = async (n: number, what: string) => {
      const mark = [...done];
      await until(`${n} more requests from every worker (${what})`, () => done.every((d, w) => d >= mark[w]! + n));
    };
    const workers = done.map(async (_, w) => {
      while (!stop) {
        const r = await get(port);
        total++;
        done[w]!++;
        if (r.status !== 200) {
          failures++;
          if (failed.length < 5) failed.push(`${r.status} ${r.body.slice(0, 80)}`);
        } else seen.set(r.body, (seen.get(r.body) ?? 0) + 1);
      }
    });
    t.teardown(() => {
      stop = true;
      agent.destroy();
    });
    const countOf = (n: string) => seen.get(n) ?? 0;

    // scale out
    cp.setEndpoints('web', [ep(0), ep(1), ep(2)]);
    await until('traffic on u2 and u3', () => countOf('u2') > 5 && countOf('u3') > 5);
    // drain u1 (terminating), then remove it
    cp.setEndpoints('web', [ep(0, { terminating: true }), ep(1), ep(2)]);
    const epType = apiType === 'DELTA_GRPC' ? TYPE_URLS.lbEndpoint : TYPE_URLS.endpoint;
    await cp.server.waitForAck('proxy-1', epType, undefined, 30_000);
    // requests sent before the ACK may still land on u1: let each worker finish one more
    await everyWorker(2, 'requests in flight at the drain have finished');
    const u1Before = countOf('u1');
    await everyWorker(10, 'a window of traffic after the drain');
    t.equal(countOf('u1'), u1Before, 'a draining endpoint gets no new requests');
    cp.setEndpoints('web', [ep(1), ep(2)]);
    await cp.server.waitForAck('proxy-1', epType, undefined, 30_000);

    // control plane gone: the last good config keeps serving
    await cp.close();
    const during = total;
    await until('traffic without a control plane', () => total > during + 50);
    t.equal(client.stats()['control_plane.connected_state'], 0);

    // back, with a changed mesh: the proxy resyncs
    cp = new ControlPlane();
    cp.setMesh(mesh([ep(2)]));
    await listenRetrying(cp, cpPort);
    await until('reconnect', () => client.stats()['control_plane.connected_state'] === 1);
    const u2At = countOf('u2');
    await cp.server.waitForAck('proxy-1', epType, undefined, 30_000);
    await everyWorker(2, 'requests in flight at the resync have finished');
    const u2Later = countOf('u2');
    await everyWorker(10, 'a window of traffic after the resync');
    t.equal(countOf('u2'), u2Later, 'after resync only u3 serves');
    t.ok(u2Later >= u2At);

    stop = true;
    await Promise.all(workers);
    t.equal(failures, 0, `no failed requests of ${total} (${failed.join(' | ')})`);
    t.comment(`${total} requests`); // every phase above is a window of completed requests
  });
}
