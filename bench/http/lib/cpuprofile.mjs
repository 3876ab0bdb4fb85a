// Self time by function from a V8 .cpuprofile, grouped into our code, dependencies,
// node internals, and V8 pseudo-frames (GC, program, idle).
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

function category(url, fn, repo) {
  if (!url) {
    if (fn === '(garbage collector)') return 'gc';
    if (fn === '(idle)') return 'idle';
    if (fn === '(program)') return 'program (native, outside JS)';
    return 'native (V8 builtins, C++ bindings incl. syscalls)';
  }
  if (url.startsWith('node:')) return 'node internals';
  if (url.startsWith('wasm://')) return 'wasm (llhttp in undici)';
  let path = url;
  try { if (url.startsWith('file:')) path = fileURLToPath(url); } catch { /* keep url */ }
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + 14).split('/');
    return `dep: ${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (path.startsWith(repo)) return 'ours';
  return 'other';
}

export function summarizeProfile(prof, repo) {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  const fns = new Map(), cats = new Map();
  let total = 0, idle = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const fn = functionName || '(anonymous)';
    const cat = category(url, functionName, repo);
    if (cat === 'idle') { idle += us; continue; }
    total += us;
    let where = url;
    try { if (url.startsWith('file:')) where = relative(repo, fileURLToPath(url)); } catch { /* keep */ }
    const key = `${fn} ${where}:${lineNumber + 1}`;
    const e = fns.get(key) ?? { fn, where: where ? `${where}:${lineNumber + 1}` : '', cat, us: 0 };
    e.us += us;
    fns.set(key, e);
    cats.set(cat, (cats.get(cat) ?? 0) + us);
  }
  return {
    totalUs: total, idleUs: idle,
    categories: [...cats].map(([cat, us]) => ({ cat, us })).sort((a, b) => b.us - a.us),
    functions: [...fns.values()].sort((a, b) => b.us - a.us),
  };
}

/** `usPerReq`, when given, turns shares into µs per request (share x measured CPU/request). */
export function renderProfile(title, s, file, top = 30, usPerReq = null) {
  const pct = (us) => `${((100 * us) / s.totalUs).toFixed(1)}%${usPerReq ? ` (${((us / s.totalUs) * usPerReq).toFixed(1)} µs)` : ''}`;
  const out = [`## ${title}`, '', `Profile: ${file}. Busy (non-idle) samples: ${(s.totalUs / 1e6).toFixed(2)} s; idle ${(s.idleUs / 1e6).toFixed(2)} s.` +
    (usPerReq ? ' Self time as % of busy samples (and µs per request = share x measured CPU µs/request).' : ''), '',
    '| category | self time |', '|---|---:|'];
  for (const c of s.categories) out.push(`| ${c.cat} | ${pct(c.us)} |`);
  out.push('', `Top ${top} functions by self time:`, '', '| # | self | function | where | category |', '|---:|---:|---|---|---|');
  s.functions.slice(0, top).forEach((e, i) => out.push(`| ${i + 1} | ${pct(e.us)} | \`${e.fn}\` | ${e.where} | ${e.cat} |`));
  const ours = s.functions.filter((e) => e.cat === 'ours').slice(0, 15);
  if (ours.length) {
    out.push('', 'Top functions in our code:', '', '| self | function | where |', '|---:|---|---|');
    for (const e of ours) out.push(`| ${pct(e.us)} | \`${e.fn}\` | ${e.where} |`);
  }
  return out.join('\n') + '\n';
}
