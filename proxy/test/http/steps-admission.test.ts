// The request admission steps of the connection manager, pure: authority checks and the
// request-target normalisation (path options, fragment, relative-only, host port).
import t from 'tap';
import fc from 'fast-check';
import type { RequestHeadersView } from '../../../filters/src/index.js';
import { authorityProblem } from '../../src/http/steps/authority-check.js';
import { normalizeTarget, type TargetOptions } from '../../src/http/steps/request-target.js';
import type { HeaderMap } from '../../src/http/headers.js';

const view = (path: string, authority = 'svc', method = 'GET', headers: HeaderMap = { host: authority }): RequestHeadersView =>
  ({ method, path, authority, scheme: 'http', headers });

const OFF: TargetOptions = { pathOps: false, paths: { normalizePath: false, mergeSlashes: false, pathWithEscapedSlashesAction: 'KEEP_UNCHANGED' }, stripPort: 'NONE' };
const NORMALIZE: TargetOptions = { pathOps: true, paths: { normalizePath: true, mergeSlashes: true, pathWithEscapedSlashesAction: 'UNESCAPE_AND_REDIRECT' }, stripPort: 'NONE' };

t.test('authority: missing, HTTP/2 Host mismatch, invalid characters', async (t) => {
  t.equal(authorityProblem(undefined, {}, false)?.status, 400);
  t.equal(authorityProblem('', {}, false)?.details, 'missing_host_header');
  t.equal(authorityProblem('a', { host: 'b', ':authority': 'a' }, true)?.details, 'http2.authority_host_mismatch');
  t.equal(authorityProblem('a', { host: 'b', ':authority': 'a' }, false), undefined, 'HTTP/1.1 has one authority: Host');
  t.equal(authorityProblem('a/b', { host: 'a/b' }, false)?.details, 'http.invalid_authority');
  t.equal(authorityProblem('svc.ns:8080', { host: 'svc.ns:8080' }, false), undefined);
  t.equal(authorityProblem('[::1]:80', {}, false), undefined);
  // Any authority with a byte outside RFC 3986's set is refused; any made of it only is accepted.
  const ok = fc.stringMatching(/^[a-zA-Z0-9\-._~!$&'()*+,;=:@[\]%]{1,40}$/);
  fc.assert(fc.property(ok, (a) => authorityProblem(a, { host: a }, false) === undefined));
  fc.assert(fc.property(ok, fc.constantFrom('/', ' ', '"', '<', '\\', '\u00e9', '\r'), ok, (x, bad, y) => authorityProblem(x + bad + y, {}, false)?.status === 400));
});

t.test('request target: relative paths only, fragment dropped, options off costs nothing', async (t) => {
  const v = view('/a/b?x=1#frag');
  t.equal(normalizeTarget(v, OFF, 80), undefined);
  t.equal(v.path, '/a/b?x=1', 'fragment dropped');
  t.equal(normalizeTarget(view('http://evil/x'), OFF, 80)?.reply.status, 404);
  t.equal(normalizeTarget(view('*', 'svc', 'OPTIONS'), OFF, 80), undefined);
  t.equal(normalizeTarget(view('', 'svc:443', 'CONNECT'), OFF, 80), undefined, "CONNECT's empty path");
  const dots = view('/a/../admin');
  t.equal(normalizeTarget(dots, OFF, 80), undefined);
  t.equal(dots.path, '/a/../admin', 'no option configured: the path is untouched');
});

t.test('request target: normalisation, rejection and redirect as Envoy', async (t) => {
  const v = view('/a//b/../c');
  t.equal(normalizeTarget(v, NORMALIZE, 80), undefined);
  t.equal(v.path, '/a/c');
  const r = normalizeTarget(view('/a%2Fb'), NORMALIZE, 80);
  t.equal(r?.kind, 'redirect');
  t.equal(r?.kind === 'redirect' ? r.location : '', '/a/b');
  t.equal(r?.reply.status, 307);
  const rej = normalizeTarget(view('/a%2Fb'), { ...NORMALIZE, paths: { ...NORMALIZE.paths, pathWithEscapedSlashesAction: 'REJECT_REQUEST' } }, 80);
  t.equal(rej?.kind, 'rejected');
  t.equal(rej?.reply.status, 400);
  // Whatever the client sends, an accepted normalised path is relative and has no "//" or dot segment left.
  fc.assert(fc.property(fc.array(fc.constantFrom('a', 'b', '.', '..', '', '%2e', 'x y'), { maxLength: 8 }), (segs) => {
    const w = view(`/${segs.join('/')}`);
    const out = normalizeTarget(w, { ...NORMALIZE, paths: { normalizePath: true, mergeSlashes: true, pathWithEscapedSlashesAction: 'KEEP_UNCHANGED' } }, 80);
    if (out !== undefined) return out.reply.status === 400;
    const p = w.path.split('?')[0]!;
    return p.startsWith('/') && !p.includes('//') && !p.split('/').some((s) => s === '.' || s === '..');
  }));
});

t.test('request target: strip_matching_host_port / strip_any_host_port', async (t) => {
  const m = view('/', 'svc:8080', 'GET', { host: 'svc:8080' });
  normalizeTarget(m, { ...OFF, stripPort: 'MATCHING' }, 8080);
  t.equal(m.authority, 'svc');
  t.equal(m.headers.host, 'svc', 'the Host header follows');
  const other = view('/', 'svc:9090');
  normalizeTarget(other, { ...OFF, stripPort: 'MATCHING' }, 8080);
  t.equal(other.authority, 'svc:9090', 'another port stays');
  const any = view('/', 'svc:9090');
  normalizeTarget(any, { ...OFF, stripPort: 'ANY' }, 8080);
  t.equal(any.authority, 'svc');
  const v6 = view('/', '[::1]');
  normalizeTarget(v6, { ...OFF, stripPort: 'ANY' }, 8080);
  t.equal(v6.authority, '[::1]', "an IPv6 literal's colons are not a port");
  const connect = view('', 'svc:443', 'CONNECT');
  normalizeTarget(connect, { ...OFF, stripPort: 'ANY' }, 443);
  t.equal(connect.authority, 'svc:443', "CONNECT's authority keeps its port");
});
