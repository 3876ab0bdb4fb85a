import t from 'tap';
import * as net from 'node:net';
import { bootstrapYaml, get, startProxyYaml, startUpstream, staticCluster } from '../helpers.js';

// upstream_bind_config: connections to the cluster's hosts come from the configured source
// address — Istio's inbound clusters use 127.0.0.6 so its iptables rules let them through.

t.test('HTTP and tcp_proxy upstream connections come from upstream_bind_config.source_address', async (t) => {
  const up = await startUpstream(t, 'up', (req, res) => res.end(req.socket.remoteAddress));
  const tcpSeen: string[] = [];
  const tcpUp = net.createServer((s) => {
    tcpSeen.push(s.remoteAddress ?? '');
    s.end('hi');
  });
  await new Promise<void>((r) => tcpUp.listen(0, '127.0.0.1', r));
  t.teardown(() => tcpUp.close());
  const bind = '    upstream_bind_config: { source_address: { address: 127.0.0.6, port_value: 0 } }';
  const yaml = bootstrapYaml(`
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: up } }]`, staticCluster('up', [up.port], bind) + staticCluster('tcp', [(tcpUp.address() as net.AddressInfo).port], bind)).replace(
    '  clusters:', `  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: tcp, cluster: tcp }
  clusters:`);
  const p = await startProxyYaml(t, yaml);
  const r = await get(p.port('main'), '/', { host: 'x' });
  t.equal(r.body, '127.0.0.6', 'the HTTP upstream sees 127.0.0.6');
  const got = await new Promise<string>((resolve, reject) => {
    const c = net.connect(p.port('tcp'), '127.0.0.1');
    let b = '';
    c.on('data', (d) => (b += d));
    c.on('close', () => resolve(b));
    c.on('error', reject);
  });
  t.equal(got, 'hi');
  t.same(tcpSeen, ['127.0.0.6'], 'the tcp_proxy upstream sees 127.0.0.6');
});
