#!/usr/bin/env node
// Module boundaries, checked before the tests run (npm test): each part (config/, proxy/,
// certs/, ...) is used by the others only through its src/index.ts; nothing imports cli/
// (the command line depends on the parts, never the other way round); and the parts'
// dependency graph has no cycles. Prints one line per violation and exits 1.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The repository root, or a tree given as the first argument (the script's own test uses one).
const root = process.argv[2] ? path.resolve(process.argv[2]) : path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PARTS = ['cli', 'config', 'proxy', 'xds-client', 'controlplane', 'certs', 'filters', 'fastpath', 'telemetry', 'demo', 'deploy', 'istio'];

function* sources(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

const problems = [];
const edges = new Map(PARTS.map((p) => [p, new Set()]));
const IMPORT = /(?:from\s+|import\(\s*)'([^']+)'/g;
for (const part of PARTS) {
  const src = path.join(root, part, 'src');
  try {
    if (!statSync(src).isDirectory()) continue;
  } catch {
    continue;
  }
  for (const file of sources(src)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1];
      if (!spec.startsWith('.')) continue;
      const target = path.relative(root, path.resolve(path.dirname(file), spec));
      const [other, sub, ...rest] = target.split(path.sep);
      if (other === part || !PARTS.includes(other)) continue;
      const where = `${path.relative(root, file)}: imports ${spec}`;
      if (other === 'cli') problems.push(`${where} (nothing may import cli/: it depends on the parts)`);
      else if (sub !== 'src' || rest.join('/') !== 'index.js') problems.push(`${where} (use ${other}/src/index.ts)`);
      edges.get(part).add(other);
    }
  }
}

// Cycles between parts: a depth-first search over the part graph.
const state = new Map();
function visit(p, stack) {
  state.set(p, 'open');
  for (const q of edges.get(p) ?? []) {
    if (state.get(q) === 'open') problems.push(`dependency cycle: ${[...stack, p, q].slice([...stack, p].indexOf(q)).join(' -> ')}`);
    else if (!state.has(q)) visit(q, [...stack, p]);
  }
  state.set(p, 'done');
}
for (const p of PARTS) if (!state.has(p)) visit(p, []);

if (problems.length > 0) {
  for (const p of problems) console.error(`boundaries: ${p}`);
  process.exit(1);
}
console.log(`boundaries: ${PARTS.length} parts, imports only through index.ts, no cycles`);
