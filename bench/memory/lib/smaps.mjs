// Resident memory of a process by kind of mapping, from /proc/<pid>/smaps:
// the node binary, other files (shared libraries, the .node addon), WebAssembly memories
// (V8 reserves ≥ 4 GiB of address space per wasm memory: any mapping of ≥ 1 GiB), and
// the rest of the anonymous memory (V8 heap, malloc, stacks).
import { readFileSync } from 'node:fs';

export function smapsBreakdown(pid) {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const kb = { nodeBinary: 0, otherFiles: 0, wasm: 0, anon: 0 };
  let current = null;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const sizeBytes = Number(BigInt('0x' + head[2]) - BigInt('0x' + head[1]));
      const path = head[3];
      if (path.startsWith('/') && /\/node$/.test(path)) current = 'nodeBinary';
      else if (path.startsWith('/')) current = 'otherFiles';
      else if (sizeBytes >= 1 << 30) current = 'wasm';
      else current = 'anon';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && current) kb[current] += Number(rss[1]);
  }
  return Object.fromEntries(Object.entries(kb).map(([k, v]) => [k, v / 1024]));
}

export function rssMB(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

export function hwmMB(pid) {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/**
 * Memory only this process holds (USS: private clean + private dirty, smaps_rollup): what
 * one more sidecar on the node costs. RSS also counts the node binary's pages, which every
 * pilotfish (and every Node process) on the node shares through the page cache.
 */
export function privateMB(pid) {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return (kb('Private_Clean') + kb('Private_Dirty')) / 1024;
}
