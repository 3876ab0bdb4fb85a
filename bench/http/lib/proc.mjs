// Process accounting from /proc: CPU time (utime+stime) and memory of a process
// and all its descendants (nginx master + worker, a Node proxy's children, ...).
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

function readStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields start after the last ')'.
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // rest[0] = state (field 3); ppid = field 4; utime = field 14; stime = field 15
    return { ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]) };
  } catch {
    return null;
  }
}

/** pid plus every live descendant. */
export function processTree(rootPid) {
  const children = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = readStat(d);
    if (!st) continue;
    const p = Number(d);
    if (!children.has(st.ppid)) children.set(st.ppid, []);
    children.get(st.ppid).push(p);
  }
  const out = [];
  const stack = [rootPid];
  while (stack.length) {
    const p = stack.pop();
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

/** CPU seconds (all threads) of the tree, split into user and system. */
export function cpuSplit(rootPid) {
  let user = 0, sys = 0;
  for (const p of processTree(rootPid)) {
    const st = readStat(p);
    if (st) { user += st.utime; sys += st.stime; }
  }
  return { user: user / CLK_TCK, sys: sys / CLK_TCK };
}

/** Total CPU seconds (user+system, all threads) of the tree. */
export function cpuSeconds(rootPid) {
  const { user, sys } = cpuSplit(rootPid);
  return user + sys;
}

function statusKb(pid, key) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Memory of the tree in MiB: current RSS and peak (VmHWM), summed over processes. */
export function memory(rootPid) {
  let rss = 0, hwm = 0;
  for (const p of processTree(rootPid)) {
    rss += statusKb(p, 'VmRSS');
    hwm += statusKb(p, 'VmHWM');
  }
  return { rssMB: rss / 1024, hwmMB: hwm / 1024 };
}

/** Busy CPU seconds per core and in total from /proc/stat (everything but idle and iowait). */
export function systemBusySeconds() {
  const perCore = [];
  let total = 0;
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = line.match(/^cpu(\d+) (.*)$/);
    if (!m) continue;
    const [user, nice, system, , , irq, softirq, steal] = m[2].trim().split(/\s+/).map(Number);
    const busy = (user + nice + system + irq + softirq + steal) / CLK_TCK;
    perCore[Number(m[1])] = busy;
    total += busy;
  }
  return { perCore, total };
}

/** CPU seconds of one process (no descendants), or null once it is gone. */
export function ownCpuSeconds(pid) {
  const st = readStat(pid);
  return st ? (st.utime + st.stime) / CLK_TCK : null;
}
