/**
 * Decisions that depend on chance use the proxy's random source (startProxy's `random`),
 * not Math.random: a canary route (runtime_fraction, Istio's and Envoy's traffic-shifting
 * idiom) is taken or skipped exactly as the injected source says.
 */
import t from 'tap';
import { decodeBootstrap, Diagnostics, formatProblem } from '../../../config/src/index.js';
import { Logger, startProxy } from '../../src/index.js';
import { get } from '../helpers.js';
import { parse } from 'yaml';

const yaml = `
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: main
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: /, runtime_fraction: { default_value: { numerator: 25, denominator: HUNDRED }, runtime_key: canary } }
                direct_response: { status: 200, body: { inline_string: canary } }
              - match: { prefix: / }
                direct_response: { status: 200, body: { inline_string: stable } }
          http_filters: [{ name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }]
`;

for (const [draw, expected] of [[0.1, 'canary'], [0.24, 'canary'], [0.25, 'stable'], [0.9, 'stable']] as const) {
  t.test(`random source drawing ${draw}: the 25% canary route is ${expected === 'canary' ? 'taken' : 'skipped'}`, async (t) => {
    const diag = new Diagnostics();
    const b = decodeBootstrap(parse(yaml), diag);
    if (!b) throw new Error(diag.errors.map(formatProblem).join('\n'));
    let draws = 0;
    const p = await startProxy(b, { log: new Logger('error'), drainTimeMs: 100, onQuit: () => undefined, random: () => (draws++, draw) });
    t.teardown(() => p.stop(0));
    const port = p.server.boundPorts.get('main')!;
    for (let i = 0; i < 5; i++) t.equal((await get(port, '/')).body, expected);
    t.ok(draws >= 5, `the decisions came from the injected source (${draws} draws)`);
  });
}
