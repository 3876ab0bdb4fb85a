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
  ]);
  const l = b!.staticResources.listeners[0]!;
  t.equal(l.name, '0.0.0.0_15001', 'unnamed listener gets "<address>_<port>"');
  t.equal(l.useOriginalDst, true);
  t.equal(l.bindToPort, true);
  t.equal(l.trafficDirection, 'OUTBOUND');
  t.equal(l.listenerFiltersTimeout, 100);
  t.equal(l.continueOnListenerFiltersTimeout, true);
  t.same(l.listenerFilters.map((f) => f.typeUrl.split('.').pop()), ['OriginalDst', 'TlsInspector', 'HttpInspector']);
  t.same(l.listenerFilters[2]!.filterDisabled, { kind: 'port', start: 80, end: 81 }, 'filter_disabled is decoded (the listener evaluates it), not ignored');
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

const minimal = (clusters: string, extra = '') => `
static_resources:
  clusters:
${clusters}
${extra}`;

t.test('root causes are reported once, never with follow-ons derived from them', async (t) => {
  // The xDS cluster's address is refused: no second error saying it is not a static cluster.
  const xds = decode(minimal(`  - name: xds
    load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: xds.example, port_value: 1 } } } }] }] }`,
  'dynamic_resources: { ads_config: { grpc_services: [{ envoy_grpc: { cluster_name: xds } }] } }'));
  t.same(xds.errors, ['static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: expected an IP address, got "xds.example" (use a STRICT_DNS or LOGICAL_DNS cluster for host names)']);
  // A refused discovery type does not fall back to STATIC's rules.
  const type = decode(minimal('  - { name: c, type: CUSTOM_TYPE, eds_cluster_config: { eds_config: { ads: {} } } }'));
  t.same(type.errors, ['static_resources.clusters[0].type: expected one of STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ORIGINAL_DST, got "CUSTOM_TYPE"']);
  // A LOGICAL_DNS endpoint refused for its own reason is not counted as "got 0".
  const logical = decode(minimal(`  - name: c
    type: LOGICAL_DNS
    load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "bad host", port_value: 80 } } } }] }] }`));
  t.equal(logical.errors.length, 1);
  t.match(logical.errors[0], /socket_address\.address: "bad host" is neither an IP address nor a host name/);
  // A chain refused for its own reason is not reported again as missing by the matcher.
  const chain = decode(fixture.replace('stat_prefix: t, cluster: od }', 'cluster: od }'));
  t.same(chain.errors, ['static_resources.listeners[0].filter_chains[1].filters[0].typed_config.stat_prefix: is required']);
});

t.test('extensions by name: known names resolve, unknown ones are one error naming them', async (t) => {
  const l = (filter: string) => decode(`
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: 1 } }
    filter_chains: [{ filters: [${filter}] }]`);
  t.same(l('{ name: envoy.filters.network.redis_proxy }').errors, [
    'static_resources.listeners[0].filter_chains[0].filters[0].typed_config: is required: "envoy.filters.network.redis_proxy" is not a network filter pilotfish knows by name',
  ]);
  t.match(l('{ name: envoy.tcp_proxy, typed_config: {} }').errors, ['static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix: is required'],
    'deprecated name with `typed_config: {}` resolves to tcp_proxy (whose own fields are then checked)');
});

t.test('ignored top-level objects are one warning each, nothing from inside them', async (t) => {
  const { errors, warnings } = decode(minimal('  - { name: c }', `layered_runtime: { layers: [{ name: x, static_layer: { a: 1 }, bogus: 2 }] }
stats_config: { stats_tags: [{ tag_name: t, regex: "x" }] }
watchdogs: { main_thread_watchdog: { miss_timeout: 1s } }
cluster_manager: { local_cluster_name: c }`));
  t.same(errors, []);
  t.same(warnings, ['layered_runtime', 'stats_config', 'watchdogs', 'cluster_manager'].map((f) => `${f}: not supported by pilotfish; ignored`));
});

t.test('enums in any case; a lone object where a list is expected (Consul)', async (t) => {
  const { b, errors } = decode(minimal(`  - { name: x, type: strict_dns, lb_policy: least_request, dns_lookup_family: v4_only,
      load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: x_y, port_value: 1 } } } } } } }`,
  'dynamic_resources: { ads_config: { api_type: delta_grpc, grpc_services: { envoy_grpc: { cluster_name: x } } } }'));
  t.same(errors, []);
  const c = b!.staticResources.clusters[0]!;
  t.same([c.type, c.lbPolicy, c.dnsLookupFamily], ['STRICT_DNS', 'LEAST_REQUEST', 'V4_ONLY']);
  t.equal(b!.dynamicResources?.adsConfig?.apiType, 'DELTA_GRPC');
  t.equal(c.loadAssignment?.endpoints[0]?.lbEndpoints[0]?.address.address, 'x_y');
});

t.test('SDS over ADS needs ads_config (or a static secret of that name)', async (t) => {
  const tls = (extra: string) => decode(`
static_resources:
  clusters:
  - name: c
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context: { tls_certificate_sds_secret_configs: [{ name: cert, sds_config: { ads: {} } }] }
${extra}`);
  t.same(tls('').errors, ['static_resources.clusters[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config.ads: SDS secret "cert" needs dynamic_resources.ads_config (or a static secret of that name)']);
  t.same(tls('  secrets: [{ name: cert, tls_certificate: { certificate_chain: { inline_string: x }, private_key: { inline_string: y } } }]').errors, []);
});

t.test('two unnamed listeners on one address: the address is the one error', async (t) => {
  const tcp = '{ filters: [{ name: envoy.filters.network.tcp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: c } }] }';
  const { errors } = decode(`
static_resources:
  listeners:
  - { address: { socket_address: { address: 127.0.0.1, port_value: 9 } }, filter_chains: [${tcp}] }
  - { address: { socket_address: { address: 127.0.0.1, port_value: 9 } }, filter_chains: [${tcp}] }
  clusters: [{ name: c }]`);
  t.same(errors, ['static_resources.listeners[1].address: 127.0.0.1:9 is already used by listener "127.0.0.1_9"']);
});
