/**
 * Process-level: `pilotfish controlplane` + `pilotfish proxy` (dynamic_resources over ADS)
 * + three upstreams; endpoints scale and drain under load, the control plane process is
 * killed and restarted. Zero failed requests is the bar.
 */
import t from 'tap';
import * as http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pilotfish } from '../test-support/cli.js';
import { freePort, httpGet, namedUpstream as upstream } from '../test-support/net.js';
import { until } from '../test-support/wait.js';

// Two process pairs started cold (tsx) on a shared 2-core machine: more than tap's 120 s default.
t.setTimeout(360_000);

let agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const get = (port: number) => httpGet(port, { agent });

const dir = mkdtempSync(path.join(tmpdir(), 'pf-xds-e2e-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

for (const apiType of ['DELTA_GRPC', 'GRPC']) {
  t.test(`${apiType}: proxy process follows the control plane process under load`, async (t) => {
    agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const ups = [await upstream(t, 'u1'), await upstream(t, 'u2'), await upstream(t, 'u3')];
    // The control plane binds port 0 and says which port it got. The listener's port
    // must stay the same across a control-plane restart, and a port-0 listener moves
    // when the resync rebuilds it (DELTA), so that one is picked here; the window in
    // which a parallel test could take it is the proxy's start.
    const listenPort = await freePort();
    const meshFile = path.join(dir, `mesh-${apiType}.yaml`);
    const writeMesh = (eps: string[]) =>
      writeFileSync(meshFile, `listeners:\n  - {name: ingress, address: 127.0.0.1, port: ${listenPort}, routes: [{prefix: /, service: web}]}\nservices:\n  - name: web\n    leds: ${apiType === 'DELTA_GRPC'}\n    endpoints: [${eps.join(', ')}]\n`);
    const ep = (i: number, extra = '') => `{address: 127.0.0.1, port: ${ups[i]}${extra}}`;
    writeMesh([ep(0)]);
    let cp = pilotfish(t, ['controlplane', '--config', meshFile, '--port', '0', '--address', '127.0.0.1']);
    await until('control plane', () => /listening \d+/.test(cp.output()), { timeoutMs: 90_000 });
    const cpPort = Number(/listening (\d+)/.exec(cp.output())![1]);
    const bootstrap = path.join(dir, `bootstrap-${apiType}.yaml`);
    writeFileSync(bootstrap, `node: {id: proxy-e2e, cluster: e2e}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: ${cpPort}}}}}]}]
dynamic_resources:
  ads_config: {api_type: ${apiType}, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}
  lds_config: {ads: {}, resource_api_version: V3}
  cds_config: {ads: {}, resource_api_version: V3}
`);
    const proxy = pilotfish(t, ['proxy', '--config', bootstrap, '--log-level', 'warning']);
    await until('proxy routing to u1', async () => (await get(listenPort)).body === 'u1', { timeoutMs: 90_000 });

    let stop = false;
    let failures = 0;
    let total = 0;
    const failed: string[] = [];
    const seen = new Map<string, number>();
    t.teardown(() => { stop = true; agent.destroy(); });
    const workers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const r = await get(listenPort);
        total++;
        if (r.status !== 200) { failures++; if (failed.length < 5) failed.push(`${r.status} ${r.body.slice(0, 80)}`); }
        else seen.set(r.body, (seen.get(r.body) ?? 0) + 1);
      }
    });
    const countOf = (n: string) => seen.get(n) ?? 0;
    // True once `name` got nothing during the next n completed requests: windows are
    // counted in requests, so a slow machine only makes them longer.
    const quietFor = async (name: string, n: number) => {
      const before = countOf(name);
      const mark = total;
      await until(`${n} more requests through the proxy`, () => total >= mark + n);
      return countOf(name) === before;
    };

    writeMesh([ep(0), ep(1), ep(2)]);
    await until('scale-out', () => countOf('u2') > 5 && countOf('u3') > 5);
    writeMesh([ep(0, ', terminating: true'), ep(1), ep(2)]);
    await until('the draining u1 to get no new requests', () => quietFor('u1', 40));
    writeMesh([ep(1), ep(2)]);
    await until('u1 removed', async () => countOf('u2') > 0 && (await quietFor('u1', 40)));
    t.ok(await quietFor('u1', 80), 'u1 removed: no request reaches it');

    cp.child.kill('SIGKILL');
    await cp.exited;
    const during = total;
    await until('traffic without a control plane', () => total > during + 100);

    writeMesh([ep(2)]);
    cp = pilotfish(t, ['controlplane', '--config', meshFile, '--port', String(cpPort), '--address', '127.0.0.1']);
    await until('control plane restart', () => /listening \d+/.test(cp.output()), { timeoutMs: 90_000 });
    await until('resync to u3 only', () => quietFor('u2', 40));
    t.ok(await quietFor('u2', 80), 'after the resync only u3 serves');

    stop = true;
    await Promise.all(workers);
    t.equal(failures, 0, `no failed requests of ${total} (${failed.join(' | ')})`);
    cp.child.kill('SIGTERM');
    proxy.child.kill('SIGTERM');
  });
}
