/**
 * The worker thread's program, as CommonJS text for `new Worker(src, { eval: true })`:
 * no file to locate next to the compiled output, no TypeScript loader in the worker, and
 * nothing of the proxy's module graph inside it.
 *
 * Inside the worker, the user's module runs in a fresh `vm` context whose only globals are
 * the ECMAScript built-ins plus `module`, `exports` and a frozen `console`; string code
 * generation (eval, new Function) and WebAssembly are off. Every object the module sees is
 * created in its own realm (parsed by the context's JSON.parse), so it never holds an
 * outer-realm object whose constructor chain would lead to `process`.
 *
 * Protocol (main -> worker):
 *   {t:'load', source, filename, config, loadTimeoutMs}
 *   "<json [id, phase, view, ctx]>"           a call; phase 'req' | 'res' (or an array of them)
 * worker -> main:
 *   {t:'loaded', hasRequest, hasResponse, probes} | {t:'load_error', message} | {t:'log', level, line, dropped}
 *   "<json [id, 1, reply|null, view]>" | "<json [id, 0, message]>"   (or an array of them)
 */
export const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort } = require('node:worker_threads');
const vm = require('node:vm');

let onRequest = null, onResponse = null, cparse = null, cstringify = null, moduleConfig = null;

function describeError(e) {
  try {
    if (e && typeof e === 'object' && typeof e.message === 'string') return (e.name ? e.name + ': ' : '') + e.message;
    return String(e);
  } catch { return 'unprintable error'; }
}

function load(m) {
  // console output reaches the proxy's log, rate-limited here so a filter logging on every
  // call cannot flood the main thread with messages: LOG_PER_SECOND lines per second, the
  // rest counted and reported with the next line that gets through.
  const LOG_PER_SECOND = 20;
  let windowStart = 0, inWindow = 0, dropped = 0;
  const log = (level) => (...args) => {
    const now = Date.now();
    if (now - windowStart >= 1000) { windowStart = now; inWindow = 0; }
    if (inWindow >= LOG_PER_SECOND) { dropped++; return; }
    inWindow++;
    let line;
    try { line = args.map((a) => typeof a === 'string' ? a : JSON.stringify(a)).join(' '); } catch { line = '(unprintable)'; }
    if (line.length > 2048) line = line.slice(0, 2048) + '…';
    try { parentPort.postMessage({ t: 'log', level, line, dropped }); dropped = 0; } catch {}
  };
  const context = vm.createContext({}, {
    name: m.filename,
    codeGeneration: { strings: false, wasm: false },
  });
  // Realm-local helpers: everything handed to user code is built by these.
  vm.runInContext(
    'globalThis.module = { exports: {} }; globalThis.exports = module.exports; ' +
    'globalThis.console = {}; ' +
    'globalThis.__pf = { parse: JSON.parse, stringify: JSON.stringify };',
    context);
  const cons = vm.runInContext('console', context);
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) cons[level] = log(level);
  vm.runInContext('Object.freeze(console);', context);
  const helpers = vm.runInContext('__pf', context);
  cparse = helpers.parse;
  cstringify = helpers.stringify;
  vm.runInContext('delete globalThis.__pf', context);
  moduleConfig = cparse(m.config === undefined ? '{}' : JSON.stringify(m.config));

  const wrapped = '(function (module, exports) {' + m.source + '\n})(module, module.exports);';
  let script;
  try {
    script = new vm.Script(wrapped, { filename: m.filename });
  } catch (e) {
    throw new Error('does not compile: ' + describeError(e));
  }
  script.runInContext(context, { timeout: m.loadTimeoutMs, breakOnSigint: false });

  const exp = vm.runInContext('module.exports', context);
  const get = (k) => {
    const v = exp == null ? undefined : exp[k];
    return typeof v === 'function' ? v : null;
  };
  onRequest = get('onRequest');
  onResponse = get('onResponse');
  if (!onRequest && !onResponse) throw new Error('module exports neither onRequest nor onResponse');
  let probes = exp == null ? undefined : exp.probe;
  if (probes !== undefined && !Array.isArray(probes)) probes = [probes];
  // The probe list leaves the context as JSON: plain data only.
  probes = probes === undefined ? [] : JSON.parse(cstringify(probes));
  return { hasRequest: onRequest !== null, hasResponse: onResponse !== null, probes };
}

// Results leave in batches: one message per turn of the worker's event loop.
let outbox = [];
function send(s) {
  if (outbox.length === 0) queueMicrotask(flush);
  outbox.push(s);
}
function flush() {
  const b = outbox;
  outbox = [];
  parentPort.postMessage(b.length === 1 ? b[0] : b);
}

function reply(id, view, r) {
  let out;
  try {
    out = '[' + id + ',1,' + (r == null ? 'null' : cstringify(r)) + ',' + cstringify(view) + ']';
  } catch (e) {
    out = JSON.stringify([id, 0, 'result not serialisable: ' + describeError(e)]);
  }
  send(out);
}

function call(msg) {
  // Cheap split of "[id," prefix: the rest is parsed in the context's realm.
  const comma = msg.indexOf(',');
  const id = Number(msg.slice(1, comma));
  let view;
  try {
    const args = cparse(msg);
    view = args[2];
    const ctx = args[3];
    ctx.config = moduleConfig;
    const fn = args[1] === 'req' ? onRequest : onResponse;
    const r = fn === null ? undefined : fn(view, ctx);
    if (r !== null && typeof r === 'object' && typeof r.then === 'function') {
      r.then((v) => reply(id, view, v), (e) => send(JSON.stringify([id, 0, describeError(e)])));
    } else {
      reply(id, view, r);
    }
  } catch (e) {
    send(JSON.stringify([id, 0, describeError(e)]));
  }
}

parentPort.on('message', (m) => {
  if (typeof m === 'string') return call(m);
  if (Array.isArray(m)) {
    for (const c of m) call(c);
    return;
  }
  if (m && m.t === 'load') {
    try {
      parentPort.postMessage({ t: 'loaded', ...load(m) });
    } catch (e) {
      parentPort.postMessage({ t: 'load_error', message: describeError(e) });
    }
  }
});
`;
