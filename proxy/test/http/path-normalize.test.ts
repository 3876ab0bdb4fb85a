import t from 'tap';
import fc from 'fast-check';
import { canonicalize, mergeSlashes, normalizePath, stripFragment, transformPath, unescapeSlashes } from '../../src/http/path-normalize.js';

// Cases from Envoy's test/common/http/path_utility_test.cc, plus the bypass attempts.
t.test('normalize_path: Envoy table', async (t) => {
  const cases: [string, string][] = [
    ['/xyz', '/xyz'], ['/x/y/z', '/x/y/z'],
    ['/a/b/../c', '/a/c'], ['/a/b/./c', '/a/b/c'], ['a/b/../c', '/a/c'], ['/a/b/../../../../c', '/c'],
    ['/a/..\\c', '/c'], ['/%c0%af', '/%c0%af'], ['/%5c%25', '/%5c%25'], ['/a/b/%2E%2E/c', '/a/c'],
    ['/a/b/%2E./c', '/a/c'], ['/a/b/%2E/c', '/a/b/c'], ['..', '/'], ['/../a/b', '/a/b'], ['/./a/b', '/a/b'],
    ['/A/B/C', '/A/B/C'], ['/a/b/%2e%2e/c', '/a/c'], ['/a/%2F%2f/c', '/a/%2F%2f/c'],
    // unreserved characters are decoded, others kept as sent
    ['/%61dmin', '/admin'], ['/%7E%2D%5F', '/~-_'], ['/a%20b', '/a%20b'], ['/a b', '/a%20b'], ['/a|b', '/a%7Cb'],
    ['/foo/../admin', '/admin'], ['/./admin', '/admin'], ['/admin/.', '/admin/'], ['/admin/..', '/'],
    ['/a/..?x=/../y', '/?x=/../y'], ['/a/.b/..c/...', '/a/.b/..c/...'], ['', '/'], ['/', '/'],
    ['/%%30%30', '/%2500'], ['/a%', '/a%'], ['/a%zz', '/a%zz'],
  ];
  for (const [input, want] of cases) t.equal(normalizePath(input), want, JSON.stringify(input));
  for (const bad of ['/xyz/.%00../abc', '/xyz/%00.%00./abc', '/xyz/AAAAA%%0000/abc', '/a\u0000b']) {
    t.equal(normalizePath(bad), undefined, `${JSON.stringify(bad)} rejected`);
  }
});

t.test('merge_slashes: Envoy table', async (t) => {
  const cases: [string, string][] = [
    ['', ''], ['a//b/c', 'a/b/c'], ['/a//b/c/', '/a/b/c/'], ['a//b/c/', 'a/b/c/'], ['/a', '/a'], ['//a/b/c', '/a/b/c'],
    ['/a//b/c', '/a/b/c'], ['/a/b/c//', '/a/b/c/'], ['/a///b/c', '/a/b/c'], ['/a////b/c', '/a/b/c'],
    ['/a//b?a=///c', '/a/b?a=///c'], ['/a//b?', '/a/b?'], ['//a/?b', '/a/?b'], ['//', '/'], ['//admin', '/admin'],
  ];
  for (const [input, want] of cases) t.equal(mergeSlashes(input), want, JSON.stringify(input));
});

t.test('escaped slashes', async (t) => {
  t.equal(unescapeSlashes('/a%2Fb%2fc%5Cd%5ce?x=%2F'), '/a/b/c\\d\\e?x=%2F', 'path part only');
  t.equal(unescapeSlashes('/a%2'), '/a%2');
  t.equal(unescapeSlashes('/plain'), '/plain');
  const on = { normalizePath: true, mergeSlashes: true } as const;
  t.same(transformPath('/admin%2F..', { ...on, pathWithEscapedSlashesAction: 'UNESCAPE_AND_FORWARD' }), { action: 'continue', path: '/' });
  t.same(transformPath('/x/..%2Fadmin', { ...on, pathWithEscapedSlashesAction: 'UNESCAPE_AND_FORWARD' }), { action: 'continue', path: '/admin' });
  t.same(transformPath('/x/..%5Cadmin', { ...on, pathWithEscapedSlashesAction: 'UNESCAPE_AND_FORWARD' }), { action: 'continue', path: '/admin' });
  t.same(transformPath('/a%2Fb', { ...on, pathWithEscapedSlashesAction: 'REJECT_REQUEST' }), { action: 'reject' });
  t.same(transformPath('/a%2Fb?q=%2F', { ...on, pathWithEscapedSlashesAction: 'UNESCAPE_AND_REDIRECT' }), { action: 'redirect', path: '/a/b?q=%2F' });
  t.same(transformPath('/a/b', { ...on, pathWithEscapedSlashesAction: 'REJECT_REQUEST' }), { action: 'continue', path: '/a/b' });
  t.same(transformPath('/a%2Fb', { normalizePath: false, mergeSlashes: false, pathWithEscapedSlashesAction: 'KEEP_UNCHANGED' }), { action: 'continue', path: '/a%2Fb' });
  t.same(transformPath('/a/%00', { ...on, pathWithEscapedSlashesAction: 'KEEP_UNCHANGED' }), { action: 'reject' });
  t.equal(stripFragment('/a#b?c'), '/a');
  t.equal(stripFragment('/a?b'), '/a?b');
});

// Paths built from the characters that matter: separators, dots, escapes, letters.
const pathChars = fc.constantFrom('/', '\\', '.', '%2e', '%2E', '%2f', '%2F', '%5c', '%', '%25', '%41', '%7e', 'a', 'B', '~', ' ', '|', '\u00e9', '?', '=');
const pathArb = fc.array(pathChars, { maxLength: 24 }).map((a) => a.join(''));

t.test('normalize_path properties', async (t) => {
  fc.assert(fc.property(pathArb, (p) => {
    const n = normalizePath(p);
    if (n === undefined) return; // only NUL rejects, and the alphabet has none
    const q = p.indexOf('?');
    const nq = n.indexOf('?');
    const path = nq < 0 ? n : n.slice(0, nq);
    // the query is untouched
    if ((q < 0 ? '' : p.slice(q)) !== (nq < 0 ? '' : n.slice(nq))) throw new Error(`query changed: ${p} -> ${n}`);
    if (!path.startsWith('/')) throw new Error(`not absolute: ${n}`);
    // no dot segments remain, however they were spelled
    const segs = path.split('/');
    for (let i = 1; i < segs.length; i++) if (segs[i] === '.' || segs[i] === '..') throw new Error(`dot segment left: ${p} -> ${n}`);
    if (/%2e/i.test(path)) throw new Error(`escaped dot left: ${n}`);
    if (path.includes('\\')) throw new Error(`backslash left: ${n}`);
    // escaped unreserved characters are decoded
    if (/%(4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2D|5F|7E)/i.test(path)) throw new Error(`unreserved left escaped: ${p} -> ${n}`);
    // idempotent: a second hop normalizing again sees the same path
    if (normalizePath(n) !== n) throw new Error(`not idempotent: ${p} -> ${n} -> ${normalizePath(n)}`);
  }), { numRuns: 5000 });
  t.pass('properties hold');
});

t.test('merge_slashes and unescape properties', async (t) => {
  fc.assert(fc.property(pathArb, (p) => {
    const m = mergeSlashes(p);
    const q = m.indexOf('?');
    const path = q < 0 ? m : m.slice(0, q);
    if (path.includes('//')) throw new Error(`double slash left: ${m}`);
    if (mergeSlashes(m) !== m) throw new Error('merge not idempotent');
    const strip = (s: string) => s.slice(0, s.indexOf('?') < 0 ? s.length : s.indexOf('?')).replaceAll('/', '');
    if (strip(m) !== strip(p)) throw new Error(`non-slash characters changed: ${p} -> ${m}`);
    const u = unescapeSlashes(p);
    const uq = u.indexOf('?');
    if (/%2f|%5c/i.test(uq < 0 ? u : u.slice(0, uq))) throw new Error(`escaped slash left: ${p} -> ${u}`);
    // with every option on, no escaped slash or dot segment can survive to the router
    const v = transformPath(p, { normalizePath: true, mergeSlashes: true, pathWithEscapedSlashesAction: 'UNESCAPE_AND_FORWARD' });
    if (v.action !== 'continue') throw new Error('unexpected verdict');
    const vp = v.path.indexOf('?') < 0 ? v.path : v.path.slice(0, v.path.indexOf('?'));
    if (vp.includes('//') || /(^|\/)\.\.?(\/|$)/.test(vp) || /%2f|%5c|%2e/i.test(vp)) throw new Error(`bypass shape survived: ${p} -> ${v.path}`);
  }), { numRuns: 5000 });
  t.pass('properties hold');
});

t.test('the no-allocation fast path agrees with the full canonicalization', async (t) => {
  const chars = fc.constantFrom('/', '.', 'a', 'b', '-', '_', '~', '%41', '%2e', '?', '\\', ' ', 'x.y', '..', '/.');
  fc.assert(fc.property(fc.array(chars, { maxLength: 16 }).map((a) => a.join('')), (p) => {
    if (normalizePath(p) !== canonicalize(p)) throw new Error(`fast path differs for ${JSON.stringify(p)}`);
  }), { numRuns: 5000 });
  t.pass('same result');
});
