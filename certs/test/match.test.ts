import t from 'tap';
import fc from 'fast-check';
import { parseSans, parseSpiffeId } from '../src/index.js';
import { compileStringMatcher } from '../src/match.js';

t.test('parseSans handles Node quoting', async (t) => {
  t.same(parseSans('DNS:a.example, URI:spiffe://example.org/ns/x, IP Address:127.0.0.1, email:a@b'), {
    uri: ['spiffe://example.org/ns/x'], dns: ['a.example'], email: ['a@b'], ip: ['127.0.0.1'],
  });
  t.same(parseSans('URI:"spiffe://x/a, DNS:evil", DNS:ok').uri, ['spiffe://x/a, DNS:evil'], 'a comma inside a quoted value is not a separator');
  t.same(parseSans('URI:"spiffe://x/a, DNS:evil", DNS:ok').dns, ['ok']);
  t.same(parseSans(undefined), { uri: [], dns: [], email: [], ip: [] });
});

t.test('parseSpiffeId follows the SPIFFE-ID spec', async (t) => {
  t.same(parseSpiffeId('spiffe://example.org/ns/default/sa/web'), { trustDomain: 'example.org', path: '/ns/default/sa/web' });
  t.same(parseSpiffeId('spiffe://example.org'), { trustDomain: 'example.org', path: '' });
  for (const bad of ['spiffe://Example.org/x', 'spiffe://example.org/', 'spiffe://example.org/a/../b', 'spiffe:///x', 'http://example.org/x', 'spiffe://ex ample/x', 'spiffe://a/b?q']) {
    t.equal(parseSpiffeId(bad), undefined, bad);
  }
  fc.assert(fc.property(fc.string(), (s) => { parseSpiffeId(s); parseSans(s); return true; }));
});

t.test('string matchers', async (t) => {
  t.ok(compileStringMatcher({ kind: 'exact', value: 'A', ignoreCase: true })('a'));
  t.notOk(compileStringMatcher({ kind: 'exact', value: 'A', ignoreCase: false })('a'));
  t.ok(compileStringMatcher({ kind: 'prefix', value: 'spiffe://x/', ignoreCase: false })('spiffe://x/y'));
  t.ok(compileStringMatcher({ kind: 'suffix', value: '.svc', ignoreCase: false })('a.svc'));
  t.ok(compileStringMatcher({ kind: 'contains', value: 'ns/', ignoreCase: false })('spiffe://x/ns/y'));
  const re = compileStringMatcher({ kind: 'safe_regex', regex: 'spiffe://x/ns/[a-z]+', ignoreCase: false });
  t.ok(re('spiffe://x/ns/abc'));
  t.notOk(re('spiffe://x/ns/abc/extra'), 'full match, like Envoy');
});
