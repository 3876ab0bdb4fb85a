import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// The boundary check must be able to fail: a tree with each kind of violation.
const SCRIPT = new URL('../check-boundaries.mjs', import.meta.url).pathname;

function tree(dir: string, files: Record<string, string>): void {
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
}

t.test('a clean tree passes; deep imports, imports of cli/ and cycles are each reported', async (t) => {
  const clean = t.testdir();
  tree(clean, {
    'config/src/index.ts': 'export const x = 1;\n',
    'proxy/src/index.ts': "import { x } from '../../config/src/index.js';\nexport const y = x;\n",
    'cli/src/main.ts': "import { y } from '../../proxy/src/index.js';\n",
  });
  const ok = spawnSync(process.execPath, [SCRIPT, clean], { encoding: 'utf8' });
  t.equal(ok.status, 0, ok.stderr);

  const bad = t.testdir();
  tree(bad, {
    'config/src/index.ts': "import { p } from '../../proxy/src/index.js';\nexport const x = p;\n",
    'config/src/model.ts': 'export type M = 1;\n',
    'proxy/src/index.ts': "import { x } from '../../config/src/index.js';\nexport const p = x;\n",
    'proxy/src/deep.ts': "import type { M } from '../../config/src/model.js';\nimport { run } from '../../cli/src/main.js';\n",
    'cli/src/main.ts': 'export const run = 1;\n',
  });
  const r = spawnSync(process.execPath, [SCRIPT, bad], { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.match(r.stderr, /proxy\/src\/deep\.ts: imports \.\.\/\.\.\/config\/src\/model\.js \(use config\/src\/index\.ts\)/);
  t.match(r.stderr, /proxy\/src\/deep\.ts: imports \.\.\/\.\.\/cli\/src\/main\.js \(nothing may import cli\//);
  t.match(r.stderr, /dependency cycle: (config -> proxy -> config|proxy -> config -> proxy)/);
});
