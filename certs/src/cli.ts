/**
 * `pilotfish certs` - the dev CA.
 *   certs init  --dir D --trust-domain example.org [--days N] [--force]
 *   certs issue --dir D --spiffe-id spiffe://example.org/ns/default/sa/web [--dns NAME]... [--days N] [--name FILE]
 */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { issueWorkload, mintRoot, type CaHandle } from './devca.js';
import { parseSpiffeId } from './match.js';

export interface CliIo {
  readonly out: (s: string) => void;
  readonly err: (s: string) => void;
}

const defaultIo: CliIo = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

const USAGE = `usage: pilotfish certs <command> [flags]

Dev CA for demos and tests (not for production).

commands:
  init    mint a root CA for a SPIFFE trust domain
  issue   issue a workload certificate (SVID) signed by that root

run "pilotfish certs <command> --help" for flags.
`;

const INIT_USAGE = `usage: pilotfish certs init --dir DIR --trust-domain DOMAIN [--days N] [--force]

Writes DIR/root.crt and DIR/root.key (ECDSA P-256).
  --dir DIR              output directory (created if missing)
  --trust-domain DOMAIN  SPIFFE trust domain, e.g. example.org
  --days N               validity in days (default 3650)
  --force                overwrite an existing root
`;

const ISSUE_USAGE = `usage: pilotfish certs issue --dir DIR --spiffe-id ID [--dns NAME]... [--days N] [--name FILE]

Writes DIR/FILE.crt (leaf), DIR/FILE.key and DIR/FILE.chain.crt, signed by DIR/root.*.
  --dir DIR        directory holding root.crt / root.key (from "certs init")
  --spiffe-id ID   spiffe://<trust-domain>/<path> of the workload (URI SAN)
  --dns NAME       DNS SAN; repeatable
  --days N         validity in days (default 1)
  --name FILE      file name stem (default: last segment of the SPIFFE ID path)
`;

class UsageError extends Error {}

function positiveInt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 36500) throw new UsageError(`${flag} must be a whole number of days between 1 and 36500`);
  return Number(v);
}

export async function runCertsCommand(argv: string[], io: CliIo = defaultIo): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      io.out(USAGE);
      return cmd === undefined ? 2 : 0;
    }
    if (cmd === 'init') return await init(rest, io);
    if (cmd === 'issue') return await issue(rest, io);
    throw new UsageError(`unknown command "${cmd}" (expected init or issue; see --help)`);
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`pilotfish certs: ${(e as Error).message.split('\n')[0]}\n`);
      return 2;
    }
    io.err(`pilotfish certs: ${(e as Error).message.split('\n')[0]}\n`);
    return 1;
  }
}

async function init(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      dir: { type: 'string' },
      'trust-domain': { type: 'string' },
      days: { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { io.out(INIT_USAGE); return 0; }
  if (!values.dir) throw new UsageError('--dir is required');
  const td = values['trust-domain'];
  if (!td) throw new UsageError('--trust-domain is required');
  if (!/^[a-z0-9._-]+$/.test(td)) throw new UsageError(`--trust-domain "${td}" is not a valid trust domain (lower-case letters, digits, ".", "-", "_")`);
  const days = positiveInt(values.days, '--days');
  const crt = join(values.dir, 'root.crt');
  if (existsSync(crt) && !values.force) throw new UsageError(`${crt} exists (use --force to replace it)`);
  await mkdir(values.dir, { recursive: true });
  const root = await mintRoot(days !== undefined ? { trustDomain: td, days } : { trustDomain: td });
  await writeFile(join(values.dir, 'root.key'), root.keyPem, { mode: 0o600 });
  await writeFile(crt, root.certPem);
  io.out(`wrote ${crt} and root.key for trust domain ${td}\n`);
  return 0;
}

async function issue(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      dir: { type: 'string' },
      'spiffe-id': { type: 'string' },
      dns: { type: 'string', multiple: true },
      days: { type: 'string' },
      name: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { io.out(ISSUE_USAGE); return 0; }
  if (!values.dir) throw new UsageError('--dir is required');
  const id = values['spiffe-id'];
  if (!id) throw new UsageError('--spiffe-id is required');
  const parsed = parseSpiffeId(id);
  if (!parsed) throw new UsageError(`--spiffe-id "${id}" is not a valid SPIFFE ID (spiffe://trust-domain/path)`);
  const days = positiveInt(values.days, '--days');
  for (const d of values.dns ?? []) {
    if (!/^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(d)) throw new UsageError(`--dns "${d}" is not a valid DNS name`);
  }
  const name = values.name ?? (parsed.path.split('/').filter(Boolean).pop() ?? 'workload');
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new UsageError(`--name "${name}" must be a plain file name`);
  let ca: CaHandle;
  try {
    const certPem = await readFile(join(values.dir, 'root.crt'), 'utf8');
    const keyPem = await readFile(join(values.dir, 'root.key'), 'utf8');
    ca = { certPem, keyPem, chainPem: certPem, trustDomain: parsed.trustDomain };
  } catch {
    throw new UsageError(`no root in ${values.dir} (run "pilotfish certs init --dir ${values.dir} --trust-domain ${parsed.trustDomain}" first)`);
  }
  const rootSans = new X509Certificate(ca.certPem).subjectAltName ?? '';
  if (rootSans.startsWith('URI:spiffe://') && rootSans !== `URI:spiffe://${parsed.trustDomain}`) {
    throw new UsageError(`--spiffe-id is in trust domain ${parsed.trustDomain}, but the root in ${values.dir} is for ${rootSans.slice('URI:spiffe://'.length)}`);
  }
  const leaf = await issueWorkload({
    ca,
    spiffeId: id,
    ...(values.dns ? { dns: values.dns } : {}),
    ...(days !== undefined ? { days } : {}),
  });
  await writeFile(join(values.dir, `${name}.key`), leaf.keyPem, { mode: 0o600 });
  await writeFile(join(values.dir, `${name}.crt`), leaf.certPem);
  await writeFile(join(values.dir, `${name}.chain.crt`), leaf.chainPem);
  io.out(`wrote ${join(values.dir, `${name}.crt`)}, ${name}.key, ${name}.chain.crt for ${id}\n`);
  return 0;
}
