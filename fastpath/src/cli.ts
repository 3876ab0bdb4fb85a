/** `pilotfish fastpath status|--help`: can this host run the fast path, and is it built? */
import { existsSync, readFileSync } from 'node:fs';
import { daemonPath, ensureBuilt } from './build.js';
import { Daemon } from './daemon.js';

const HELP = `usage: pilotfish fastpath <command>

commands:
  status     check whether the eBPF fast path can run here (root, kernel, toolchain),
             build it if needed, load it once and report; exit 0 if usable, 1 if not
  --help     this text

The fast path is configured through the bootstrap extension "pilotfish.fastpath"
(see fastpath/README.md).`;

async function probe(): Promise<{ ok: boolean; lines: string[] }> {
  const lines: string[] = [];
  const release = existsSync('/proc/sys/kernel/osrelease') ? readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim() : process.platform;
  lines.push(`kernel: ${release}`);
  if (process.platform !== 'linux') return { ok: false, lines: [...lines, 'fastpath: unavailable: needs Linux'] };
  if (process.getuid?.() !== 0) return { ok: false, lines: [...lines, 'fastpath: unavailable: needs root (CAP_BPF + CAP_NET_ADMIN)'] };
  lines.push(`btf: ${existsSync('/sys/kernel/btf/vmlinux') ? 'yes' : 'no'}`);
  const built = await ensureBuilt();
  if (!built.ok) return { ok: false, lines: [...lines, `fastpath: unavailable: ${built.reason}`] };
  lines.push(`helper: ${daemonPath()}`);
  try {
    const d = await Daemon.start({ binary: daemonPath() });
    lines.push(`cpus: ${d.ncpus}`);
    await d.close();
    lines.push('fastpath: available (programs load and verify)');
    return { ok: true, lines };
  } catch (e) {
    return { ok: false, lines: [...lines, `fastpath: unavailable: ${(e as Error).message}`] };
  }
}

export async function runFastPathCommand(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s + '\n')): Promise<number> {
  const cmd = argv[0];
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    out(HELP);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === 'status') {
    const r = await probe();
    for (const l of r.lines) out(l);
    return r.ok ? 0 : 1;
  }
  out(`unknown fastpath command "${cmd}"\n\n${HELP}`);
  return 2;
}
