/**
 * Interoperability: @grpc/grpc-js-xds (code nobody here wrote) resolves `xds:///echo.test`
 * through our control plane (SotW LDS/RDS/CDS/EDS) and sends a real RPC to a gRPC server
 * picked from the endpoints we serve.
 */
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import * as xds from '@grpc/grpc-js-xds';
import { ControlPlane, parseMesh } from '../src/index.js';
import { TYPE_URLS } from '../../xds-client/src/index.js';
import { until } from '../../test-support/wait.js';

const METHOD = '/pilotfish.test.Echo/Echo';
const id = (b: Buffer) => b;

function startBackend(tag: string): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService(
    { Echo: { path: METHOD, requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } },
    { Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.concat([Buffer.from(tag + ':'), call.request])) },
  );
  return new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve({ server, port }))),
  );
}

function call(client: grpc.Client, msg: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(METHOD, id, id, Buffer.from(msg), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res!.toString()))),
  );
}

t.test('grpc-js-xds routes a real RPC through our control plane', async (t) => {
  const a = await startBackend('a');
  const b = await startBackend('b');
  const cp = new ControlPlane();
  cp.setMesh(
    parseMesh({
      listeners: [{ name: 'echo.test', grpc: true, routes: [{ prefix: '/', service: 'echo' }] }],
      services: [{ name: 'echo', endpoints: [{ address: '127.0.0.1', port: a.port, zone: 'z' }] }],
    }),
  );
  const port = await cp.listen(0);
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [{ server_uri: `127.0.0.1:${port}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'grpc-js-xds-client', locality: {} },
  });
  xds.register();
  const client = new grpc.Client('xds:///echo.test', grpc.credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await cp.close();
    a.server.forceShutdown();
    b.server.forceShutdown();
    // grpc-js-xds keeps its xDS client (a process-wide singleton) retrying; do not let it hold the test open.
    setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
  });

  t.equal(await call(client, 'hi'), 'a:hi');
  for (const url of [TYPE_URLS.listener, TYPE_URLS.route, TYPE_URLS.cluster, TYPE_URLS.endpoint]) {
    t.ok(cp.server.ackedVersion('grpc-js-xds-client', url) >= 1, `grpc-js-xds ACKed ${url.split('.').pop()}`);
  }

  // Move the service to the other backend: an EDS push only.
  const v = cp.setEndpoints('echo', [{ address: '127.0.0.1', port: b.port, zone: 'z' }]);
  await cp.server.waitForAck('grpc-js-xds-client', TYPE_URLS.endpoint, v);
  let got = '';
  await until('grpc-js-xds to route to the new backend', async () => (got = await call(client, 'again')) === 'b:again', { intervalMs: 100, state: () => got });
  t.equal(got, 'b:again');

  // A resource grpc-js-xds must reject: it NACKs with the nonce, and keeps routing.
  const nack = cp.server.waitForNack('grpc-js-xds-client', TYPE_URLS.cluster);
  cp.setResources(TYPE_URLS.cluster, { echo: { name: 'echo', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } }, lb_policy: 'CLUSTER_PROVIDED' } });
  const ev = await nack;
  t.ok(ev.error.length > 0, `NACK: ${ev.error}`);
  t.equal(await call(client, 'still'), 'b:still');
});
