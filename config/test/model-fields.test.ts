import t from 'tap';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { Diagnostics, decodeBootstrap, decodeCluster, flattenLoadAssignment, formatProblem, sameEndpoint } from '../src/index.js';

const fixture = readFileSync(new URL('./fixtures/transparent.yaml', import.meta.url), 'utf8');

function decode(yaml: string) {
  const diag = new Diagnostics();
  const b = decodeBootstrap(parseYaml(yaml), diag);
  return { b, errors: diag.errors.map(formatProblem), warnings: diag.warnings.map(formatProblem) };
}

t.test('transparent-proxy listener: name generated, matcher tree, listener filters by name, criteria', async (t) => {
  const { b, errors, warnings } = decode(fixture);
  t.same(errors, []);
  t.same(warnings, [
    'static_resources.listeners[0].filter_chains[1].filter_chain_match: ignored: filter_chain_matcher selects the chain',
    'static_resources.listeners[0].listener_filters[2].filter_disabled: not supported by pilotfish; ignored (the filter always runs)',
  ]);
  const l = b!.staticResources.listeners[0]!;
  t.equal(l.name, '0.0.0.0_15001', 'unnamed listener gets "<address>_<port>"');
  t.equal(l.useOriginalDst, true);
  t.equal(l.bindToPort, true);
  t.equal(l.trafficDirection, 'OUTBOUND');
  t.equal(l.listenerFiltersTimeout, 100);
  t.equal(l.continueOnListenerFiltersTimeout, true);
  t.same(l.listenerFilters.map((f) => f.typeUrl.split('.').pop()), ['OriginalDst', 'TlsInspector', 'HttpInspector']);
  const m = l.filterChainMatcher;
  t.equal(m?.kind, 'tree');
  if (m?.kind !== 'tree') return;
  t.equal(m.input, 'destination_port');
  t.same(m.exact.get('80'), { kind: 'chain', name: 'http' });
  const inner = m.exact.get('443');
  t.equal(inner?.kind === 'tree' ? inner.input : '', 'destination_ip');
  t.same(inner?.kind === 'tree' ? [...inner.prefix] : [], [['10.0.0.0/8', { kind: 'chain', name: 'tcp' }]], 'IPMatcher ranges become prefix entries "addr/len"');
  t.same(m.onNoMatch, { kind: 'chain', name: 'tcp' });
  const match = l.filterChains[1]!.match!;
  t.same(match, {
    destinationPort: 443, prefixRanges: [{ addressPrefix: '::', prefixLen: 0 }], directSourcePrefixRanges: [],
    sourceType: 'EXTERNAL', sourcePrefixRanges: [{ addressPrefix: '192.168.0.0', prefixLen: 16 }], sourcePorts: [1234],
    serverNames: ['example.com'], applicationProtocols: ['h2'], transportProtocol: 'tls',
  });
  const pipe = b!.staticResources.listeners[1]!;
  t.equal(pipe.name, '/tmp/pilotfish-test.sock', 'an unnamed pipe listener is named by its path');
  t.same(pipe.address.pipe, { path: '/tmp/pilotfish-test.sock', mode: 0o600 });
});

t.test('HCM path, XFCC, local reply, upgrade fields; route connect matcher, upgrades, max_stream_duration', async (t) => {
  const { b } = decode(fixture);
  const net = b!.staticResources.listeners[0]!.filterChains[0]!.network;
  if (net.kind !== 'http') return t.fail('not http');
  t.equal(net.normalizePath, true);
  t.equal(net.mergeSlashes, true);
  t.equal(net.pathWithEscapedSlashesAction, 'KEEP_UNCHANGED', 'IMPLEMENTATION_SPECIFIC_DEFAULT is KEEP_UNCHANGED');
  t.equal(net.stripPortMode, 'ANY');
  t.equal(net.forwardClientCertDetails, 'APPEND_FORWARD');
  t.same(net.setCurrentClientCertDetails, { subject: true, cert: false, chain: false, dns: false, uri: true });
  t.equal(net.via, 'pilot');
  t.same(net.upgradeConfigs, [{ upgradeType: 'websocket', enabled: true }]);
  t.equal(net.http2AllowConnect, true);
  t.same(net.internalAddressCidrs, [{ addressPrefix: '10.0.0.0', prefixLen: 8 }]);
  t.equal(net.localReplyConfig?.mappers[0]?.statusCode, 504);
  t.equal(net.localReplyConfig?.mappers[0]?.body, 'oops');
  t.same(net.localReplyConfig?.bodyFormat, { text: '%LOCAL_REPLY_BODY% %RESPONSE_CODE%\n', contentType: 'text/plain', omitEmptyValues: false });
  t.equal(net.httpFilters[0]?.typeUrl, 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router', 'router resolved by name');
  const routes = net.routeSource.kind === 'inline' ? net.routeSource.config.virtualHosts[0]!.routes : [];
  t.same(routes[0]?.match.path, { kind: 'connect_matcher' });
  const a0 = routes[0]?.action;
  t.same(a0?.kind === 'route' ? a0.upgradeConfigs : [], [{ upgradeType: 'connect', enabled: true, connectConfig: { allowPost: true } }]);
  const a1 = routes[1]?.action;
  t.equal(a1?.kind === 'route' ? a1.maxStreamDuration : -1, 10_000);
  t.equal(a1?.kind === 'route' ? a1.grpcTimeoutHeaderMax : -1, 5000);
});

t.test('clusters: ORIGINAL_DST, transport_socket_matches, keepalive, pipe endpoints, underscore DNS names', async (t) => {
  const { b } = decode(fixture);
  const [od, web, xds] = b!.staticResources.clusters;
  t.equal(od?.type, 'ORIGINAL_DST');
  t.equal(od?.lbPolicy, 'CLUSTER_PROVIDED');
  t.same(od?.originalDst, { useHttpHeader: true, httpHeaderName: 'x-envoy-original-dst-host', upstreamPortOverride: 8080 });
  t.equal(od?.cleanupInterval, 5000);
  t.same(od?.upstreamConnectionOptions, { tcpKeepalive: { probes: 3, time: 300_000, interval: 30_000 } });
  t.same(web?.transportSocketMatches.map((m) => [m.name, m.match, m.transportSocket?.typeUrl]), [
    ['tlsMode-istio', { tlsMode: 'istio' }, 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext'],
    ['tlsMode-disabled', {}, undefined],
  ], 'raw_buffer (by name) is plaintext: no transport socket');
  const eps = flattenLoadAssignment(web!.loadAssignment!);
  t.equal(eps[0]?.address, 'web_service', 'docker-compose names resolve in DNS clusters');
  t.same(eps[0]?.transportSocketMatch, { tlsMode: 'istio' });
  const x = flattenLoadAssignment(xds!.loadAssignment!);
  t.same(x.map((e) => [e.key, e.address, e.port, e.pipe]), [['unix:./etc/istio/proxy/XDS', './etc/istio/proxy/XDS', 0, true]]);
  t.same(b!.dynamicResources?.adsConfig?.grpcServices[0]?.initialMetadata, [{ key: 'authorization', value: 'Bearer x' }]);
  t.notOk(sameEndpoint(eps[0]!, { ...eps[0]!, transportSocketMatch: { tlsMode: 'disabled' } }), 'sameEndpoint compares the match metadata');
  t.ok(sameEndpoint(eps[0]!, { ...eps[0]!, transportSocketMatch: { tlsMode: 'istio' } }));
});

const cluster = (body: string) => {
  const diag = new Diagnostics();
  const c = decodeCluster(parseYaml(`name: c\nconnect_timeout: 1s\n${body}`), diag, 'c');
  return { c, errors: diag.errors.map(formatProblem), warnings: diag.warnings.map(formatProblem) };
};

t.test('ORIGINAL_DST pairing rules follow Envoy', async (t) => {
  t.same(cluster('type: ORIGINAL_DST').errors, [], 'lb_policy implied');
  t.equal(cluster('type: ORIGINAL_DST').c?.lbPolicy, 'CLUSTER_PROVIDED');
  t.same(cluster('type: ORIGINAL_DST\nlb_policy: ROUND_ROBIN').errors, ['c.lb_policy: ROUND_ROBIN is not valid for an ORIGINAL_DST cluster; only CLUSTER_PROVIDED is allowed']);
  t.match(cluster('type: STATIC\nlb_policy: CLUSTER_PROVIDED\nload_assignment: { endpoints: [] }').errors, [/CLUSTER_PROVIDED is only valid for an ORIGINAL_DST cluster/]);
  t.match(cluster('type: ORIGINAL_DST\nload_assignment: { endpoints: [] }').errors, [/must have no load assignment/]);
  t.match(cluster('type: ORIGINAL_DST\noriginal_dst_lb_config: { http_header_name: x-dst }').errors, [/use_http_header is false/]);
  t.equal(cluster('type: ORIGINAL_DST\ncleanup_interval: 2s').c?.cleanupInterval, 2000);
});

t.test('matcher actions must name an existing chain; UDP listeners are one error', async (t) => {
  const bad = fixture.replace('value: http }', 'value: nope }');
  t.match(decode(bad).errors, [/exact_match_map\.map\.80\.action\.typed_config\.value: names no filter chain of this listener: "nope"$/]);
  const udp = decode(`
static_resources:
  listeners:
  - name: dns
    address: { socket_address: { protocol: udp, address: 0.0.0.0, port_value: 5353 } }
    listener_filters:
    - name: envoy.filters.udp_listener.udp_proxy
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig, stat_prefix: s, cluster: c }
`);
  t.same(udp.errors, ['static_resources.listeners[0]: UDP listeners are not supported by pilotfish']);
  t.same(udp.warnings, []);
});
