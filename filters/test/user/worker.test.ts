/**
 * The worker's program is a real module (filters/src/user/worker.ts): type-checked with the
 * rest, compiled by the build to worker.js and started by URL. Here it is compiled the way
 * the build does (ES module, beside a package.json of type module, as in dist/) and started
 * by URL in a real worker thread, then spoken to over its protocol.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { workerProgram } from '../../src/user/sandbox.js';

const ts = createRequire(import.meta.url)('typescript') as typeof import('typescript');
const WORKER_TS = new URL('../../src/user/worker.ts', import.meta.url);

function compiledWorkerUrl(t: { teardown(fn: () => void): void }): URL {
  const dir = mkdtempSync(join(tmpdir(), 'pf-worker-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = ts.transpileModule(readFileSync(WORKER_TS, 'utf8'), {
    fileName: WORKER_TS.pathname,
    compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  });
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
  writeFileSync(join(dir, 'worker.js'), out.outputText);
  return pathToFileURL(join(dir, 'worker.js'));
}

function next(w: Worker): Promise<unknown> {
  return new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
}

t.test('compiled worker.js started by URL loads a filter and answers calls', async (t) => {
  const w = new Worker(compiledWorkerUrl(t), { execArgv: [], env: {}, argv: [] });
  t.teardown(() => w.terminate());
  const source = `
    exports.onRequest = (req, ctx) => { req.headers['x-tag'] = ctx.config.tag; if (req.path === '/deny') return { status: 403 }; };
    exports.probe = { request: { path: '/' } };`;
  w.postMessage({ t: 'load', source, filename: 'tagger.js', config: { tag: 'blue' }, loadTimeoutMs: 1000 });
  t.same(await next(w), { t: 'loaded', hasRequest: true, hasResponse: false, probes: [{ request: { path: '/' } }] });
  w.postMessage(JSON.stringify([1, 'req', { path: '/', headers: {} }, {}]));
  t.same(JSON.parse((await next(w)) as string), [1, 1, null, { path: '/', headers: { 'x-tag': 'blue' } }], 'view mutated with ctx.config');
  w.postMessage([JSON.stringify([2, 'req', { path: '/deny', headers: {} }, {}]), JSON.stringify([3, 'res', { status: 200 }, {}])]);
  const batch = (await next(w)) as string[];
  t.same(batch.map((s) => JSON.parse(s)), [
    [2, 1, { status: 403 }, { path: '/deny', headers: { 'x-tag': 'blue' } }],
    [3, 1, null, { status: 200 }],
  ], 'a batch in, one batch out; no onResponse means pass');
});

t.test('the module sees no process, require or eval inside the worker', async (t) => {
  const w = new Worker(compiledWorkerUrl(t), { execArgv: [], env: {}, argv: [] });
  t.teardown(() => w.terminate());
  const source = `exports.onRequest = () => ({ status: 200, body: [typeof process, typeof require, typeof globalThis.fetch, (() => { try { return eval('1'); } catch (e) { return e.name; } })()].join(',') });`;
  w.postMessage({ t: 'load', source, filename: 'probe.js', config: undefined, loadTimeoutMs: 1000 });
  t.match(await next(w), { t: 'loaded' });
  w.postMessage(JSON.stringify([1, 'req', {}, {}]));
  t.same(JSON.parse((await next(w)) as string)[2], { status: 200, body: 'undefined,undefined,undefined,EvalError' });
});

t.test('a module that does not compile is a load_error with the reason', async (t) => {
  const w = new Worker(compiledWorkerUrl(t), { execArgv: [], env: {}, argv: [] });
  t.teardown(() => w.terminate());
  w.postMessage({ t: 'load', source: 'exports.onRequest = (', filename: 'bad.js', config: undefined, loadTimeoutMs: 1000 });
  t.match(await next(w), { t: 'load_error', message: /does not compile: SyntaxError/ });
});

t.test('from TypeScript source the sandbox runs the same module, transpiled once', async (t) => {
  const p = workerProgram();
  t.ok('source' in p, 'tests run from .ts: the transpiled text, not a URL');
  t.equal(workerProgram(), p, 'transpiled once per process');
  if ('source' in p) t.match(p.source, /class FilterWorker/);
});
