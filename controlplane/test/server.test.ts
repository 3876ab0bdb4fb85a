/** The ADS server at the protocol level, driven by a raw gRPC stream (no XdsClient). */
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { XdsServer } from '../src/index.js';
import { codecs, DELTA_METHOD, SOTW_METHOD, TYPE_URLS, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse, type DiscoveryRequest, type DiscoveryResponse } from '../../xds-client/src/index.js';

const EDS = TYPE_URLS.endpoint;
const CDS = TYPE_URLS.cluster;
const cla = (name: string, port: number) => ({ cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: port } } } }] }] });
const cluster = (name: string, ms = 1) => ({ name, type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } }, connect_timeout: `${ms}s` });

class Raw<Req, Res> {
  private queue: Res[] = [];
  private waiters: ((r: Res) => void)[] = [];
  readonly stream: grpc.ClientDuplexStream<Req, Res>;
  constructor(readonly client: grpc.Client, method: string, enc: (r: Req) => Buffer, dec: (b: Buffer) => Res) {
    this.stream = client.makeBidiStreamRequest(method, enc, dec);
    this.stream.on('data', (r: Res) => {
      const w = this.waiters.shift();
      if (w) w(r);
      else this.queue.push(r);
    });
    this.stream.on('error', () => {});
  }
  send(r: Req): void {
    this.stream.write(r);
  }
  /** The next response; the deadline only bounds how long a failure takes to report. */
  next(timeoutMs = 30_000): Promise<Res> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no response from the control plane within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
  }
  async none(ms = 300): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.queue.length === 0;
  }
  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}

async function start(t: { teardown(f: () => unknown): void }) {
  const server = new XdsServer();
  const port = await server.listen(0);
  t.teardown(() => server.close());
  return { server, port };
}

const sotwReq = (type_url: string, names: string[], nonce = '', version = '', error?: string): DiscoveryRequest => ({
  type_url,
  resource_names: names,
  response_nonce: nonce,
  version_info: version,
  node: { id: 'raw', cluster: 'c' },
  ...(error ? { error_detail: { code: 3, message: error } } : {}),
});

t.test('SotW: by-name EDS pushes only what changed; NACK and stale nonces', async (t) => {
  const { server, port } = await start(t);
  server.setResources(EDS, { a: cla('a', 1), b: cla('b', 2), c: cla('c', 3) });
  const raw = new Raw<DiscoveryRequest, DiscoveryResponse>(new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()), SOTW_METHOD, codecs.request.encode, codecs.response.decode);
  t.teardown(() => raw.close());
  raw.send(sotwReq(EDS, ['a', 'b']));
  const r1 = await raw.next();
  t.equal(r1.resources.length, 2);
  const acked = server.waitForAck('raw', EDS, Number(r1.version_info));
  raw.send(sotwReq(EDS, ['a', 'b'], r1.nonce, r1.version_info));
  await acked;
  t.ok(await raw.none(), 'an ACK is not answered');
  server.updateResources(EDS, { a: cla('a', 10), c: cla('c', 30) });
  const r2 = await raw.next();
  t.equal(r2.resources.length, 1, 'only a: b unchanged, c not subscribed');
  // a NACK is reported with the nonce; the server does not resend the same thing
  const nack = server.waitForNack('raw', EDS);
  raw.send(sotwReq(EDS, ['a', 'b'], r2.nonce, r1.version_info, 'bad endpoint'));
  const ev = await nack;
  t.equal(ev.nonce, r2.nonce);
  t.equal(ev.error, 'bad endpoint');
  t.ok(await raw.none());
  // a request with a stale nonce is ignored, the current one changes the subscription
  raw.send(sotwReq(EDS, ['a', 'b', 'c'], r1.nonce, r1.version_info));
  t.ok(await raw.none(), 'stale nonce ignored');
  raw.send(sotwReq(EDS, ['a', 'b', 'c'], r2.nonce, r1.version_info));
  const r3 = await raw.next();
  t.equal(r3.resources.length, 3);
});

t.test('SotW: wildcard CDS gets every cluster, also in an empty first answer', async (t) => {
  const { server, port } = await start(t);
  const raw = new Raw<DiscoveryRequest, DiscoveryResponse>(new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()), SOTW_METHOD, codecs.request.encode, codecs.response.decode);
  t.teardown(() => raw.close());
  raw.send(sotwReq(CDS, []));
  t.equal((await raw.next()).resources.length, 0);
  server.setResources(CDS, { a: cluster('a'), b: cluster('b') });
  t.equal((await raw.next()).resources.length, 2);
  server.setResources(CDS, { b: cluster('b') });
  t.equal((await raw.next()).resources.length, 1, 'removal = a full set without it');
});

const deltaReq = (type_url: string, sub: string[], unsub: string[] = [], nonce = '', initial: Record<string, string> = {}, error?: string): DeltaDiscoveryRequest => ({
  type_url,
  resource_names_subscribe: sub,
  resource_names_unsubscribe: unsub,
  initial_resource_versions: initial,
  response_nonce: nonce,
  node: { id: 'raw', cluster: 'c' },
  ...(error ? { error_detail: { code: 3, message: error } } : {}),
});

t.test('Delta: initial_resource_versions, changes only, removed_resources, unsubscribe', async (t) => {
  const { server, port } = await start(t);
  server.setResources(CDS, { a: cluster('a'), b: cluster('b') });
  const version = server.store.resources(CDS).get('a')!.version;
  const raw = new Raw<DeltaDiscoveryRequest, DeltaDiscoveryResponse>(new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()), DELTA_METHOD, codecs.deltaRequest.encode, codecs.deltaResponse.decode);
  t.teardown(() => raw.close());
  raw.send(deltaReq(CDS, [], [], '', { a: version, gone: 'x' }));
  const r1 = await raw.next();
  t.same(r1.resources.map((r) => r.name), ['b'], 'a is already held at this version');
  t.same(r1.removed_resources, ['gone']);
  raw.send(deltaReq(CDS, [], [], r1.nonce));
  server.setResources(CDS, { a: cluster('a', 2), b: cluster('b') });
  const r2 = await raw.next();
  t.same(r2.resources.map((r) => r.name), ['a']);
  raw.send(deltaReq(CDS, [], [], r2.nonce));
  server.setResources(CDS, { a: cluster('a', 2) });
  const r3 = await raw.next();
  t.same(r3.resources, []);
  t.same(r3.removed_resources, ['b']);
  raw.send(deltaReq(CDS, [], [], r3.nonce));

  // by-name EDS: subscribe, unsubscribe, and an answer even for a name that does not exist yet
  server.setResources(EDS, { a: cla('a', 1) });
  raw.send(deltaReq(EDS, ['a', 'zz']));
  const e1 = await raw.next();
  t.same(e1.resources.map((r) => r.name), ['a']);
  const processed = new Promise((r) => server.once('ack', r));
  raw.send(deltaReq(EDS, [], ['a'], e1.nonce));
  await processed;
  server.setResources(EDS, { a: cla('a', 2), zz: cla('zz', 3) });
  const e2 = await raw.next();
  t.same(e2.resources.map((r) => r.name), ['zz'], 'unsubscribed a is not sent');
  const nack = server.waitForNack('raw', EDS);
  raw.send(deltaReq(EDS, [], [], e2.nonce, {}, 'zz is bad'));
  t.equal((await nack).nonce, e2.nonce);
});
