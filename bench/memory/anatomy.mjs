#!/usr/bin/env node
// What idle RSS of `pilotfish proxy` with the minimal static HTTP bootstrap is made of:
// RSS by mapping kind (smaps), V8 heap by space, code, wasm memories, modules loaded.
// `node bench/memory/anatomy.mjs [--root DIR]... [--node-arg ARG]... [--mtls]`; several --root
// compare builds (e.g. a checkout of the previous commit) in the same run. --mtls adds the
// HTTP benchmark's mTLS listener (DownstreamTlsContext, client certificate required) to the
// bootstrap, as `bench/http/run.mjs --scenarios mtls-h1` runs it.
import { parseArgs } from 'node:util';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPilotfish, freePort, minimalBootstrap } from './lib/pilotfish.mjs';
import { pilotfishBootstrap } from '../http/lib/configs.mjs';
import { makeCerts } from '../http/lib/mtls.mjs';
import { smapsBreakdown, rssMB } from './lib/smaps.mjs';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const { values: o } = parseArgs({ options: {
  root: { type: 'string', multiple: true, default: [REPO] },
  'node-arg': { type: 'string', multiple: true, default: [] },
  idle: { type: 'string', default: '3' },
  modules: { type: 'boolean' },
  mtls: { type: 'boolean' },
} });
const PROBE = fileURLToPath(new URL('./lib/probe.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'pf-mem-anatomy-'));
const pki = o.mtls ? makeCerts(dir) : undefined;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mb = (b) => (b / 1048576).toFixed(1);

async function measure(root, probe) {
  const port = await freePort(), adminPort = await freePort(), upstreamPort = await freePort();
  const config = join(dir, `bootstrap-${port}.yaml`);
  writeFileSync(config, pki
    ? pilotfishBootstrap({ port, adminPort, upstreamPort, mtls: { port: await freePort(), pki } })
    : minimalBootstrap({ port, adminPort, upstreamPort }));
  const out = join(dir, `probe-${port}.json`);
  const esm = join(dir, `esm-${port}.txt`);
  const nodeArgs = [...o['node-arg'], ...(probe ? ['--import', PROBE] : [])];
  const env = probe ? { PF_PROBE_OUT: out, ...(o.modules ? { PF_PROBE_ESM: esm } : {}) } : {};
  const p = await startPilotfish({ root, config, nodeArgs, env, logFile: join(dir, 'pilotfish.log'), readyUrl: `http://127.0.0.1:${adminPort}/ready` });
  try {
    await sleep(Number(o.idle) * 1000);
    const result = { readyMs: p.readyMs, rssMB: rssMB(p.pid), smaps: smapsBreakdown(p.pid) };
    if (probe) {
      process.kill(p.pid, 'SIGUSR2');
      for (let i = 0; i < 200 && !existsSync(out); i++) await sleep(10);
      await sleep(50);
      result.probe = JSON.parse(readFileSync(out, 'utf8'));
      if (o.modules && existsSync(esm)) result.esm = readFileSync(esm, 'utf8').trim().split('\n');
    }
    return result;
  } finally {
    await p.stop();
  }
}

function packageOf(file) {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
  return m ? m[1] : file.includes('/dist/') || file.includes('/src/') ? '(pilotfish)' : '(other)';
}

try {
  console.log(`node ${process.version}, idle ${o.idle} s after ready, node args: ${o['node-arg'].join(' ') || '(none)'}${pki ? ', with the mTLS listener' : ''}\n`);
  for (const root of o.root) {
    const plain = await measure(root, false);
    const probed = await measure(root, true);
    const u = probed.probe.memoryUsage;
    console.log(`## ${root}\n`);
    console.log(`ready in ${plain.readyMs.toFixed(0)} ms; idle RSS ${plain.rssMB.toFixed(1)} MB (with the probe loaded: ${probed.rssMB.toFixed(1)} MB)\n`);
    console.log('| RSS by mapping | MB |\n|---|---|');
    for (const [k, v] of Object.entries(plain.smaps)) console.log(`| ${k} | ${v.toFixed(1)} |`);
    console.log(`\nV8 heap used ${mb(u.heapUsed)} / total ${mb(u.heapTotal)} MB, external ${mb(u.external)} MB, array buffers ${mb(u.arrayBuffers)} MB\n`);
    console.log('| heap space | committed MB | used MB |\n|---|---|---|');
    for (const s of probed.probe.heapSpaces) console.log(`| ${s.space_name} | ${mb(s.physical_space_size)} | ${mb(s.space_used_size)} |`);
    const c = probed.probe.heapCode;
    console.log(`\ncode: bytecode+metadata ${mb(c.bytecode_and_metadata_size)} MB, code+metadata ${mb(c.code_and_metadata_size)} MB, external scripts ${mb(c.external_script_source_size)} MB\n`);
    const byPkg = new Map();
    const files = new Set([...probed.probe.cjs.map((m) => m.file), ...(probed.esm ?? []).filter((u2) => u2.startsWith('file:')).map((u2) => fileURLToPath(u2))]);
    for (const f of files) {
      const e = byPkg.get(packageOf(f)) ?? { n: 0, bytes: 0 };
      e.n++;
      try { e.bytes += readFileSync(f).length; } catch { /* gone */ }
      byPkg.set(packageOf(f), e);
    }
    if (process.env.PF_LIST) writeFileSync(process.env.PF_LIST, [...files].join("\n"));
    console.log(`modules: ${files.size} files (CommonJS ${probed.probe.cjs.length}${probed.esm ? `, ES ${probed.esm.length} incl. builtins` : '; add --modules for ES modules'})\n`);
    console.log('| package | files | source KB |\n|---|---|---|');
    for (const [k, v] of [...byPkg].sort((a, b) => b[1].bytes - a[1].bytes)) console.log(`| ${k} | ${v.n} | ${(v.bytes / 1024).toFixed(0)} |`);
    console.log('');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
