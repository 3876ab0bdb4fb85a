#!/usr/bin/env node
// Bundles the compiled CLI (dist/cli/src/main.js and everything it imports, statically or
// lazily) into dist/bundle/: one file for the start path plus one chunk per lazily
// imported part. Why: Node 20's ES module loader spends ~0.5–1 ms per module (resolve,
// stat, read, compile, link) and `pilotfish proxy` loads ~180 of ours at start; one file
// starts ~40% sooner and holds ~5 MB less (module records, URLs, per-module scopes)
// (bench/memory/, figures in bench/README.md). The tsc output stays the source of truth:
// bin/pilotfish.js runs the bundle only while it is newer than every file it was built
// from (dist/bundle/inputs.json), else the unbundled dist/.
//
// What a bundle would otherwise change, and how it does not:
// - files found next to a module (`new URL('../protos', import.meta.url)`, the native
//   addon, the user-filter worker, createRequire for undici/yaml/llhttp): each module's
//   `import.meta.url` is rewritten to its own dist/ file's URL, so every lookup is the
//   one the unbundled build does;
// - lazy loading: esbuild splits at every dynamic `import()`, so what is lazy stays lazy
//   (a chunk per part: xDS, control plane, demo, fast path...);
// - npm packages stay external: loaded from node_modules as before, once, by Node.
//
//   node cli/bundle.mjs [--root DIR]      (npm run build runs it after tsc)
import { build } from 'esbuild';
import { readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({ options: { root: { type: 'string' } } });
const ROOT = resolve(o.root ?? fileURLToPath(new URL('..', import.meta.url)));
const DIST = join(ROOT, 'dist');
const OUT = join(DIST, 'bundle');
const ENTRY = join(DIST, 'cli/src/main.js');
if (!existsSync(ENTRY)) {
  process.stderr.write(`cli/bundle.mjs: ${ENTRY} is missing (run tsc first)\n`);
  process.exit(1);
}

/** Each dist module keeps its own `import.meta.url` (see the header). */
const ownImportMetaUrl = {
  name: 'own-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(DIST + sep)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return { contents: text, loader: 'js' };
      const rel = relative(OUT, args.path).split(sep).join('/');
      return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`), loader: 'js' };
    });
  },
};

rmSync(OUT, { recursive: true, force: true });
const result = await build({
  entryPoints: { main: ENTRY },
  outdir: OUT,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  // Whitespace and comments out, names kept (stack traces stay readable; the source map
  // leads back to the TypeScript): V8 keeps every script's source on its heap for lazy
  // compilation, so the start path's ~1 MB of source is ~0.5 MB smaller.
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: false,
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
  plugins: [ownImportMetaUrl],
});
const rel = (p) => relative(ROOT, resolve(p)).split(sep).join('/');
const inputs = Object.keys(result.metafile.inputs).map(rel).sort();
// Which compiled modules each output file holds: cli/test/lazy-loading.test.ts maps the
// chunks a running proxy loaded back to modules, to check that lazy parts stay lazy.
const chunks = Object.fromEntries(Object.entries(result.metafile.outputs)
  .filter(([file]) => file.endsWith('.js'))
  .map(([file, out]) => [rel(file), Object.keys(out.inputs).map(rel).sort()]));
// Written last: bin/pilotfish.js compares the entry's mtime with the inputs' mtimes.
writeFileSync(join(OUT, 'inputs.json'), JSON.stringify({ entry: 'dist/bundle/main.js', inputs, chunks }) + '\n');
process.stdout.write(`cli/bundle.mjs: dist/bundle/ from ${inputs.length} modules\n`);
