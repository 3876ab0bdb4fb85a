import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileFilter } from '../../src/access-log/filter.js';
import { LineSink } from '../../src/access-log/sink.js';
import { compileAccessLogs, logRequest } from '../../src/access-log/index.js';
import type { LogContext } from '../../src/types.js';

function ctx(code: number, ms: number, flags = ''): LogContext {
  const start = 1000;
  return {
    stream: { requestId: 'r', startTime: start, downstreamAddress: '127.0.0.1', peerIdentity: undefined, method: 'GET', protocol: 'HTTP/1.1', routeName: undefined, clusterName: undefined, responseCode: code, responseFlags: flags, responseCodeDetails: '', upstreamHost: undefined, attemptCount: 1, bytesSent: 0 },
    request: { method: 'GET', path: '/', authority: 'a', scheme: 'http', headers: {} },
    endTime: start + ms,
  };
}

t.test('status, duration, flags, and/or filters', async (t) => {
  const errors: string[] = [];
  const ge500 = compileFilter({ status_code_filter: { comparison: { op: 'GE', value: { default_value: 500, runtime_key: 'k' } } } }, 'filter', errors)!;
  t.ok(ge500(ctx(503, 1)));
  t.notOk(ge500(ctx(200, 1)));
  const slow = compileFilter({ duration_filter: { comparison: { op: 'GE', value: { default_value: 100 } } } }, 'filter', errors)!;
  t.ok(slow(ctx(200, 150)));
  t.notOk(slow(ctx(200, 5)));
  const either = compileFilter({ or_filter: { filters: [{ status_code_filter: { comparison: { op: 'GE', value: { default_value: 500 } } } }, { response_flag_filter: { flags: ['UT'] } }] } }, 'filter', errors)!;
  t.ok(either(ctx(504, 1, 'UT')));
  t.ok(either(ctx(500, 1)));
  t.notOk(either(ctx(404, 1, 'NR')));
  t.same(errors, []);
});

t.test('runtime_filter samples its default fraction', async (t) => {
  const errors: string[] = [];
  let x = 0;
  const seq = () => ((x = (x + 0.01) % 1), x);
  const f = compileFilter({ runtime_filter: { runtime_key: 'k', percent_sampled: { numerator: 25, denominator: 'HUNDRED' } } }, 'filter', errors, seq)!;
  let kept = 0;
  for (let i = 0; i < 1000; i++) if (f(ctx(200, 1))) kept++;
  t.ok(kept > 200 && kept < 300, `about a quarter kept (${kept})`);
  const none = compileFilter({ runtime_filter: { runtime_key: 'k' } }, 'filter', errors)!;
  t.notOk(none(ctx(200, 1)), 'no percent_sampled: 0%');
  t.same(errors, []);
});

t.test('bad filters are path-prefixed errors', async (t) => {
  const errors: string[] = [];
  compileFilter({ grpc_status_filter: { statuses: ['OK'] } }, 'access_log[0].filter', errors);
  compileFilter({ status_code_filter: { comparison: { op: 'XX', value: { default_value: 1 } } } }, 'access_log[1].filter', errors);
  t.match(errors[0], /^access_log\[0\]\.filter\.grpc_status_filter: access log filter not supported/);
  t.match(errors[1], /^access_log\[1\]\.filter\.status_code_filter\.comparison\.op:/);
});

t.test('file sink: batched, ordered, flushed on close', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-sink-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'a.log');
  const sink = LineSink.file(file);
  for (let i = 0; i < 500; i++) sink.write(`line ${i}\n`);
  await sink.drain();
  t.equal(readFileSync(file, 'utf8').split('\n').length - 1, 500);
  sink.write('last\n');
  await sink.close();
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  t.equal(lines.at(-1), 'last');
  t.equal(lines[123], 'line 123');
  t.same(sink.stats, { written: 501, dropped: 0, writeErrors: 0 });
});

t.test('file sink: drops and counts past its bound instead of growing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-sink-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sink = LineSink.file(join(dir, 'b.log'), 100);
  for (let i = 0; i < 50; i++) sink.write('0123456789\n');
  t.ok(sink.stats.dropped > 0, `dropped ${sink.stats.dropped}`);
  await sink.close();
  t.equal(sink.stats.written + sink.stats.dropped, 50);
});

t.test('compileAccessLogs: stdout/file loggers, filters, unsupported types', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pf-al-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'c.log');
  const errors: string[] = [];
  const sinks = new Map();
  const loggers = compileAccessLogs([
    { name: 'f', typeUrl: 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', config: { path: file, log_format: { text_format_source: { inline_string: '%RESPONSE_CODE% %DURATION%\n' } } } },
    { name: 'j', typeUrl: 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', config: { path: file, log_format: { json_format: { code: '%RESPONSE_CODE%' } } }, filter: { status_code_filter: { comparison: { op: 'GE', value: { default_value: 500 } } } } } as never,
  ], 'access_log', errors, sinks);
  t.same(errors, []);
  t.equal(sinks.size, 1, 'one sink per file');
  logRequest(loggers, ctx(200, 3));
  logRequest(loggers, ctx(502, 7));
  await [...sinks.values()][0].close();
  t.equal(readFileSync(file, 'utf8'), '200 3\n502 7\n{"code":502}\n');
  const bad: string[] = [];
  compileAccessLogs([
    { name: 'x', typeUrl: 'type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig', config: {} },
    { name: 'y', typeUrl: 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', config: { log_format: { text_format_source: { inline_string: '%X%' } } } },
  ], 'access_log', bad, new Map());
  t.match(bad[0], /^access_log\[0\]\.typed_config: access logger envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig not supported/);
  t.match(bad[1], /^access_log\[1\]\.typed_config\.path: is required/);
});

t.test('header_filter: Envoy HeaderMatcher on request headers and pseudo-headers (envoy-demo uses it in local_reply_config)', async (t) => {
  const errors: string[] = [];
  const withReq = (method: string, headers: Record<string, string>) => ({ ...ctx(200, 1), request: { method, path: '/x', authority: 'a', scheme: 'http' as const, headers } });
  const isGet = compileFilter({ header_filter: { header: { name: ':method', string_match: { exact: 'GET' } } } }, 'filter', errors)!;
  t.ok(isGet(withReq('GET', {})));
  t.notOk(isGet(withReq('POST', {})));
  const debug = compileFilter({ header_filter: { header: { name: 'x-debug', present_match: true } } }, 'filter', errors)!;
  t.ok(debug(withReq('GET', { 'x-debug': '1' })));
  t.notOk(debug(withReq('GET', {})));
  const notBot = compileFilter({ header_filter: { header: { name: 'user-agent', string_match: { prefix: 'bot' }, invert_match: true } } }, 'filter', errors)!;
  t.ok(notBot(withReq('GET', { 'user-agent': 'curl/8' })));
  t.notOk(notBot(withReq('GET', { 'user-agent': 'bot/1' })));
  t.same(errors, []);
  const bad: string[] = [];
  t.equal(compileFilter({ header_filter: { header: { string_match: { exact: 'x' } } } }, 'f', bad), undefined);
  t.match(bad.join('\n'), /f\.header_filter\.header\.name: is required/, 'a header matcher without a name is refused by path');
});
