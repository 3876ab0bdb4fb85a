/**
 * Memory diet: `pilotfish proxy` with a minimal static bootstrap (one HTTP listener, one
 * STATIC cluster, admin; JSON, no TLS, no regex, no tracing, no xDS) loads none of the
 * heavy parts it does not use. The module list comes from the child process itself
 * (fixtures/module-recorder.mjs): a static import of any of these anywhere on the start-up
 * path makes this test fail, naming the module and what it costs.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { until } from '../../test-support/wait.js';

type Test = Pick<typeof t, 'teardown' | 'equal' | 'ok' | 'same'>;

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RECORDER = fileURLToPath(new URL('./fixtures/module-recorder.mjs', import.meta.url));

/** What must not be loaded, and why it matters (measured by bench/memory/anatomy.mjs). */
const MUST_NOT_LOAD: readonly [RegExp, string][] = [
  [/\/node_modules\/@opentelemetry\//, 'OpenTelemetry (tracing SDK + OTLP exporter: loaded only when a listener traces; stats render Prometheus text themselves)'],
  [/\/node_modules\/@grpc\//, 'grpc-js (~12 MB of RSS: xDS only)'],
  [/\/node_modules\/protobufjs\//, 'protobufjs (xDS only)'],
  [/\/node_modules\/@kubernetes\//, 'the Kubernetes client (~70 MB: deploy/ and the control plane only)'],
  [/\/node_modules\/re2-wasm\//, 'RE2 (wasm: only when a config has a safe_regex)'],
  // undici's llhttp wasm (lib/llhttp/) is the raw HTTP/1.1 path's parser and loads with the first HTTP chain; undici itself must not.
  [/\/node_modules\/undici\/(?!lib\/llhttp\/)/, 'undici (~8 MB: required on the first TLS/HTTP/2 upstream pool, not at start-up)'],
  [/\/node_modules\/yaml\//, 'the YAML parser (a JSON bootstrap does not need it)'],
  [/\/node_modules\/semver\//, 'semver (47 CommonJS files, ~20 ms: only a user filter config checks a version range)'],
  [/\/node_modules\/lru-cache\//, 'lru-cache (only a TLS context that verifies peers)'],
  [/\/xds-client\/src\//, 'the xDS client (no dynamic_resources)'],
  [/\/controlplane\/src\//, 'the control plane (a separate command)'],
  [/\/demo\/src\//, 'the demo (a separate command)'],
  [/\/deploy\/src\//, 'deploy/ (Kubernetes manifests and EndpointSlices)'],
  [/\/fastpath\/src\/(daemon|cli|build)\./, 'the fast path daemon/CLI (no pilotfish.fastpath bootstrap extension)'],
];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function status(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

function minimalBootstrap(port: number, adminPort: number, upstreamPort: number): object {
  return {
    node: { id: 'lazy-loading', cluster: 'test' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
    static_resources: {
      listeners: [{
        name: 'http',
        address: { socket_address: { address: '127.0.0.1', port_value: port } },
        filter_chains: [{
          filters: [{
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 'ingress',
              route_config: { name: 'r', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'up' } }] }] },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          }],
        }],
      }],
      clusters: [{
        name: 'up',
        type: 'STATIC',
        connect_timeout: '1s',
        load_assignment: { cluster_name: 'up', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: upstreamPort } } } }] }] },
      }],
    },
  };
}

/** `pilotfish proxy` from source (tsx), or the built CLI as users run it (bin/pilotfish.js: dist/bundle/ when fresh). */
const FROM_SOURCE = ['--import', 'tsx', join(ROOT, 'cli/src/entry.ts')];
const BUILT = [join(ROOT, 'bin/pilotfish.js')];

/** Runs `pilotfish proxy -c <bootstrap>` until `ready` says so, then SIGTERM; returns every module file it loaded. */
async function loadedModules(t: Test, bootstrap: object, ready: (adminPort: number) => Promise<boolean>, adminPort: number, cli: readonly string[] = FROM_SOURCE): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'pf-lazy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'bootstrap.json');
  writeFileSync(config, JSON.stringify(bootstrap));
  const out = join(dir, 'modules');
  let stderr = '';
  const child = spawn(process.execPath, ['--import', RECORDER, ...cli, 'proxy', '-c', config, '--drain-time-s', '0', '-l', 'warning'], {
    cwd: ROOT,
    env: { ...process.env, PF_MODULES_OUT: out },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  await until('the proxy to be up', async () => child.exitCode === null && (await ready(adminPort)), { timeoutMs: 60_000 });
  child.kill('SIGTERM');
  t.equal(await exited, 0, `the proxy exits cleanly on SIGTERM (stderr: ${stderr.slice(-500)})`);
  t.ok(existsSync(`${out}.esm`) && existsSync(`${out}.cjs`), 'the child wrote its module lists');
  const loaded = [
    ...readFileSync(`${out}.esm`, 'utf8').split('\n').filter((u) => u.startsWith('file:')).map((u) => fileURLToPath(u)),
    ...readFileSync(`${out}.cjs`, 'utf8').split('\n'),
  ].filter(Boolean);
  if (cli === BUILT) return loaded;
  // The recorder works: the data plane itself is in the list (so an empty list cannot pass).
  t.ok(loaded.some((f) => f.endsWith('/proxy/src/server.ts')), 'the list includes proxy/src/server.ts');
  return loaded;
}

function notLoaded(t: Test, loaded: readonly string[], pattern: RegExp, what: string): void {
  t.same(loaded.filter((f) => pattern.test(f)).slice(0, 3), [], `not loaded: ${what}`);
}

t.test('a minimal static bootstrap loads no OTel, gRPC, xDS, Kubernetes, RE2, undici or YAML', async (t) => {
  const [port, adminPort, upstreamPort] = [await freePort(), await freePort(), await freePort()];
  const loaded = await loadedModules(t, minimalBootstrap(port, adminPort, upstreamPort), async (a) => (await status(a, '/ready')) === 200, adminPort);
  t.ok(loaded.some((f) => f.endsWith('/proxy/src/stats/stats.ts')), 'the list includes proxy/src/stats/stats.ts');
  for (const [pattern, what] of MUST_NOT_LOAD) notLoaded(t, loaded, pattern, what);
});

t.test('with xDS, OpenTelemetry still loads only when a listener traces', async (t) => {
  const [adminPort, xdsPort] = [await freePort(), await freePort()];
  // Nothing listens on xdsPort: the proxy starts, keeps retrying, and its admin answers (503 until LDS/CDS arrive).
  const bootstrap = {
    node: { id: 'lazy-loading-xds', cluster: 'test' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
    dynamic_resources: {
      ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds' } }] },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: {
      clusters: [{
        name: 'xds', type: 'STATIC', connect_timeout: '1s',
        typed_extension_protocol_options: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions', explicit_http_config: { http2_protocol_options: {} } } },
        load_assignment: { cluster_name: 'xds', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: xdsPort } } } }] }] },
      }],
    },
  };
  const loaded = await loadedModules(t, bootstrap, async (a) => (await status(a, '/ready')) !== 0, adminPort);
  t.ok(loaded.some((f) => /\/node_modules\/@grpc\/grpc-js\//.test(f)), 'grpc-js is loaded (the xDS client runs)');
  notLoaded(t, loaded, /\/node_modules\/@opentelemetry\//, 'OpenTelemetry (no listener traces yet)');
});

t.test('the bundled CLI (dist/bundle/, what bin/pilotfish.js runs) keeps the lazy parts in chunks it does not load', async (t) => {
  const manifestFile = join(ROOT, 'dist/bundle/inputs.json');
  t.ok(existsSync(manifestFile), 'dist/bundle/ is built (npm run build: tsc, then cli/bundle.mjs)');
  if (!existsSync(manifestFile)) return;
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { chunks: Record<string, string[]> };
  const [port, adminPort, upstreamPort] = [await freePort(), await freePort(), await freePort()];
  const files = await loadedModules(t, minimalBootstrap(port, adminPort, upstreamPort), async (a) => (await status(a, '/ready')) === 200, adminPort, BUILT);
  t.ok(files.includes(join(ROOT, 'dist/bundle/main.js')), 'bin/pilotfish.js ran the bundle (a bare tsc after npm run build makes it stale: run npm run build)');
  // Each chunk loaded stands for the compiled modules it holds.
  const loaded = files.flatMap((f) => {
    const chunk = manifest.chunks[f.slice(ROOT.length).replace(/^\//, '')];
    return chunk ? chunk.map((m) => join(ROOT, m)) : [f];
  });
  t.ok(loaded.some((f) => f.endsWith('/dist/proxy/src/server.js')), 'the chunks loaded hold dist/proxy/src/server.js');
  t.ok(loaded.some((f) => f.endsWith('/dist/proxy/src/stats/stats.js')), 'the chunks loaded hold dist/proxy/src/stats/stats.js');
  for (const [pattern, what] of MUST_NOT_LOAD) notLoaded(t, loaded, pattern, what);
});
