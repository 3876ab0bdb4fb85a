import t from 'tap';
import fc from 'fast-check';
import { COMMANDS, DEFAULT_FORMAT, formatTime, parseFormat } from '../../src/access-log/format.js';
import { compileJsonFormat } from '../../src/access-log/json-format.js';
import type { LogContext } from '../../src/types.js';

const start = performance.now() - 42.7;
const ctx: LogContext = {
  stream: {
    requestId: 'rid-1', startTime: start, downstreamAddress: '10.1.2.3', downstreamLocalPort: 15006,
    peerIdentity: 'spiffe://cluster.local/ns/default/sa/frontend', method: 'GET', protocol: 'HTTP/1.1',
    routeName: 'r1', clusterName: 'backend', responseCode: 503, responseFlags: 'UH', responseCodeDetails: 'no_healthy_upstream',
    upstreamHost: undefined, attemptCount: 1, bytesSent: 19,
  },
  request: { method: 'GET', path: '/api/items?x=1', authority: 'shop.local', scheme: 'http', headers: { 'x-request-id': 'rid-1', 'user-agent': 'curl/8' } },
  endTime: start + 42.7,
};

function render(f: string): string {
  const r = parseFormat(f);
  if (!r.ok) throw new Error(r.error);
  return r.format.render(ctx);
}

t.test('Envoy commands render from the stream and the request', async (t) => {
  t.equal(render('%REQ(:PATH)% %REQ(X-REQUEST-ID)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%'), '/api/items?x=1 rid-1 503 UH no_healthy_upstream');
  t.equal(render('%DURATION%'), '42');
  t.equal(render('%UPSTREAM_HOST%|%DOWNSTREAM_PEER_URI_SAN%|%DOWNSTREAM_REMOTE_ADDRESS%|%PROTOCOL%|%BYTES_SENT%'), '-|spiffe://cluster.local/ns/default/sa/frontend|10.1.2.3|HTTP/1.1|19');
  t.equal(render('%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%'), '/api/items?x=1', 'alternative header');
  t.equal(render('%REQ(USER-AGENT):4%'), 'curl', 'truncation');
  t.equal(render('100%% %REQ(:AUTHORITY)%'), '100% shop.local', '%% escapes');
  t.match(render('%START_TIME%'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.match(render('%START_TIME(%Y/%m/%dT%H:%M:%S%z)%'), /^\d{4}\/\d\d\/\d\dT\d\d:\d\d:\d\d\+0000$/);
  t.equal(formatTime(Date.UTC(2024, 0, 2, 3, 4, 5, 678), '%s.%3f %E3S'), '1704164645.678 05.678');
  t.match(render(DEFAULT_FORMAT), /^\[.*\] "GET \/api\/items\?x=1 HTTP\/1\.1" 503 UH 0 19 42 - "-" "curl\/8" "rid-1" "shop.local" "-"\n$/);
});

t.test('bad formats are errors naming the offset, never throws', async (t) => {
  for (const bad of ['%BOGUS%', '%REQ%', '%REQ()%', '%DURATION(x)%', 'abc %', '%RESPONSE_CODE', '%REQ(a:5%', '%REQ(a):x%', '%%%']) {
    const r = parseFormat(bad);
    t.notOk(r.ok, `${bad} rejected`);
    if (!r.ok) t.match(r.error, /at offset \d+/);
  }
});

t.test('json_format keeps types and nests', async (t) => {
  const r = compileJsonFormat({ code: '%RESPONSE_CODE%', up: '%UPSTREAM_HOST%', path: 'p=%REQ(:PATH)%', n: { id: '%REQ(X-REQUEST-ID)%' }, k: 7 }, 'json_format');
  t.same(r.errors, []);
  t.same(JSON.parse(r.format!.render(ctx)), { code: 503, up: null, path: 'p=/api/items?x=1', n: { id: 'rid-1' }, k: 7 });
  const bad = compileJsonFormat({ a: { b: '%NOPE%' } }, 'json_format');
  t.match(bad.errors[0], /^json_format\.a\.b: at offset 0: unknown command %NOPE%/);
});

// ---------------------------------------------------------------- properties

const literal = fc.string({ maxLength: 20 }).map((s) => s.replace(/%/g, '%%'));
const header = fc.constantFrom('x-request-id', 'user-agent', ':path', ':authority', 'missing-header', 'X-Request-Id');
const command = fc.oneof(
  fc.constantFrom(...COMMANDS.filter((c) => c !== 'REQ' && c !== 'RESP' && c !== 'TRAILER' && c !== 'START_TIME' && c !== 'HOSTNAME')).map((c) => `%${c}%`),
  fc.tuple(header, fc.option(header, { nil: undefined })).map(([a, b]) => `%REQ(${b ? `${a}?${b}` : a})%`),
  fc.tuple(header, fc.nat(30)).map(([a, n]) => `%REQ(${a}):${n}%`),
);
const piece = fc.oneof(literal, command);

t.test('property: the parser never throws on any input', async () => {
  fc.assert(fc.property(fc.string({ maxLength: 60 }), (s) => {
    const r = parseFormat(s);
    return r.ok ? typeof r.format.render(ctx) === 'string' : typeof r.error === 'string';
  }));
  fc.assert(fc.property(fc.array(fc.oneof(piece, fc.constantFrom('%', '(', ')', ':', '%(')), { maxLength: 8 }), (ps) => {
    parseFormat(ps.join(''));
  }));
});

t.test('property: text without % renders as itself', async () => {
  fc.assert(fc.property(fc.string({ maxLength: 80 }).filter((s) => !s.includes('%')), (s) => render(s) === s));
});

t.test('property: rendering is compositional over well-formed pieces', async () => {
  fc.assert(fc.property(fc.array(piece, { maxLength: 10 }), (ps) => {
    const whole = parseFormat(ps.join(''));
    if (!whole.ok) return false;
    return whole.format.render(ctx) === ps.map(render).join('');
  }));
});

t.test('property: :N truncation bounds every value', async () => {
  fc.assert(fc.property(header, fc.nat(10), (h, n) => render(`%REQ(${h}):${n}%`).length <= Math.max(n, 1)));
});

t.test('Istio\'s default access-log format (meshConfig.accessLogFile, TEXT) parses and renders', async (t) => {
  const istio = '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n';
  const r = parseFormat(istio);
  if (!r.ok) return t.fail(r.error);
  const intercepted: LogContext = { ...ctx, stream: { ...ctx.stream, connection: { localAddress: '0.0.0.0', originalDst: { address: '198.19.0.12', port: 9080 }, serverName: 'outbound_.9080_._.reviews.default.svc.cluster.local' } } };
  t.match(r.format.render(intercepted), /" 503 UH no_healthy_upstream - "-" 0 19 42 - "-" "curl\/8" "rid-1" "shop\.local" "-" backend - 198\.19\.0\.12:9080 10\.1\.2\.3 outbound_\.9080_\._\.reviews\.default\.svc\.cluster\.local r1\n$/);
  t.equal(render('%DOWNSTREAM_LOCAL_ADDRESS%|%REQUESTED_SERVER_NAME%'), '-|-', 'no connection info: "-" as Envoy prints an empty value');
  t.equal(parseFormat('%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%').ok && parseFormat('%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%').ok, true);
});
