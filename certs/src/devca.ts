/**
 * Dev CA: mints a root and SPIFFE workload certificates for the demo, tests and e2e.
 * Keys come from node:crypto; signing is done by the Debian `openssl` CLI (`openssl ca`,
 * because it is the 3.0 command that accepts explicit start/end dates, which tests need
 * for expired and not-yet-valid certificates). No hand-written ASN.1.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type KeyAlgorithm = 'ec-p256' | 'ec-p384' | 'rsa-2048';

export interface MintedCert {
  /** Leaf (or root) certificate, PEM. */
  readonly certPem: string;
  /** PKCS#8 private key, PEM. */
  readonly keyPem: string;
  /** certPem followed by the intermediates that issued it (not the root). */
  readonly chainPem: string;
}

export interface CaHandle extends MintedCert {
  readonly trustDomain: string;
}

export interface MintRootOptions {
  readonly trustDomain: string;
  readonly commonName?: string;
  readonly days?: number;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly keyAlgorithm?: KeyAlgorithm;
}

export interface IssueOptions {
  readonly ca: CaHandle;
  /** spiffe://trust-domain/path; becomes the (single) SPIFFE URI SAN. */
  readonly spiffeId?: string;
  /** Extra URI SANs (e.g. to build a malformed SVID with two SPIFFE IDs). */
  readonly uris?: readonly string[];
  readonly dns?: readonly string[];
  readonly commonName?: string;
  readonly days?: number;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly keyAlgorithm?: KeyAlgorithm;
  /** Issue an intermediate CA instead of a workload leaf. */
  readonly intermediate?: boolean;
}

const DAY = 86_400_000;

function newKey(alg: KeyAlgorithm = 'ec-p256'): string {
  if (alg === 'rsa-2048') {
    return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  }
  const namedCurve = alg === 'ec-p384' ? 'P-384' : 'P-256';
  return generateKeyPairSync('ec', { namedCurve }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

function run(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args[0]} failed: ${String(stderr).trim().split('\n').slice(-2).join(' | ') || err.message}`));
      else resolve();
    });
  });
}

/** openssl ca wants GeneralizedTime-ish YYYYMMDDHHMMSSZ. */
function asn1Time(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

function dnValue(s: string): string {
  return s.replace(/[/\\=+,]/g, '_');
}

function validity(o: { days?: number; notBefore?: Date; notAfter?: Date }, defaultDays: number): { start: Date; end: Date } {
  // Backdate a little so freshly minted certs are valid on hosts with small clock skew.
  const start = o.notBefore ?? new Date(Date.now() - 5 * 60_000);
  const end = o.notAfter ?? new Date(start.getTime() + (o.days ?? defaultDays) * DAY);
  return { start, end };
}

const CA_CONF = `
[ ca ]
default_ca = dev_ca
[ dev_ca ]
database = index.txt
serial = serial
new_certs_dir = .
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[ policy_any ]
organizationName = optional
commonName = optional
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
O = pilotfish
`;

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'pilotfish-devca-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function sign(opts: {
  caCert: string;
  caKey: string;
  subjectKey: string;
  subject: string;
  ext: string;
  start: Date;
  end: Date;
  selfSign: boolean;
}): Promise<string> {
  return withTmp(async (dir) => {
    await writeFile(join(dir, 'ca.cnf'), `${CA_CONF}\n[ ext ]\n${opts.ext}\n`);
    await writeFile(join(dir, 'index.txt'), '');
    await writeFile(join(dir, 'serial'), `${randomBytes(8).toString('hex')}\n`);
    await writeFile(join(dir, 'ca.crt'), opts.caCert);
    await writeFile(join(dir, 'ca.key'), opts.caKey, { mode: 0o600 });
    await writeFile(join(dir, 'leaf.key'), opts.subjectKey, { mode: 0o600 });
    await run(['req', '-new', '-config', 'ca.cnf', '-key', 'leaf.key', '-subj', opts.subject, '-out', 'leaf.csr'], dir);
    const args = ['ca', '-batch', '-config', 'ca.cnf', '-extensions', 'ext', '-in', 'leaf.csr', '-out', 'leaf.crt',
      '-keyfile', 'ca.key', '-startdate', asn1Time(opts.start), '-enddate', asn1Time(opts.end),
      '-notext', '-subj', opts.subject];
    if (opts.selfSign) args.push('-selfsign');
    else args.push('-cert', 'ca.crt');
    await run(args, dir);
    const pem = await readFile(join(dir, 'leaf.crt'), 'utf8');
    const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(pem);
    if (!m) throw new Error('openssl ca produced no certificate');
    return m[0].endsWith('\n') ? m[0] : `${m[0]}\n`;
  });
}

/** Mints a self-signed root for a trust domain (ECDSA P-256 by default). */
export async function mintRoot(o: MintRootOptions): Promise<CaHandle> {
  const keyPem = newKey(o.keyAlgorithm);
  const { start, end } = validity(o, 3650);
  const subject = `/O=pilotfish dev CA/CN=${dnValue(o.commonName ?? `${o.trustDomain} root`)}`;
  const ext = [
    'basicConstraints = critical, CA:TRUE',
    'keyUsage = critical, keyCertSign, cRLSign, digitalSignature',
    'subjectKeyIdentifier = hash',
    `subjectAltName = URI:spiffe://${o.trustDomain}`,
  ].join('\n');
  // A placeholder "CA cert" is required by -selfsign only for its key, which we give via -keyfile.
  const certPem = await sign({ caCert: '', caKey: keyPem, subjectKey: keyPem, subject, ext, start, end, selfSign: true });
  return { certPem, keyPem, chainPem: certPem, trustDomain: o.trustDomain };
}

/** Issues a workload (SVID) certificate, or an intermediate CA, signed by `ca`. */
export async function issueWorkload(o: IssueOptions): Promise<MintedCert & { readonly spiffeId?: string }> {
  const keyPem = newKey(o.keyAlgorithm);
  const { start, end } = validity(o, o.intermediate ? 365 : 1);
  const sans: string[] = [];
  if (o.spiffeId !== undefined) sans.push(`URI:${o.spiffeId}`);
  for (const u of o.uris ?? []) sans.push(`URI:${u}`);
  for (const d of o.dns ?? []) sans.push(`DNS:${d}`);
  const ext = o.intermediate
    ? [
        'basicConstraints = critical, CA:TRUE, pathlen:0',
        'keyUsage = critical, keyCertSign, cRLSign, digitalSignature',
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid',
      ]
    : [
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature, keyEncipherment, keyAgreement',
        'extendedKeyUsage = serverAuth, clientAuth',
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid',
      ];
  if (sans.length > 0) ext.push(`subjectAltName = ${sans.join(', ')}`);
  const cn = o.commonName ?? (o.intermediate ? `${o.ca.trustDomain} intermediate` : (o.dns?.[0] ?? 'workload'));
  const subject = `/O=pilotfish/CN=${dnValue(cn)}`;
  const certPem = await sign({ caCert: o.ca.certPem, caKey: o.ca.keyPem, subjectKey: keyPem, subject, ext: ext.join('\n'), start, end, selfSign: false });
  // The chain a workload presents: its leaf plus any intermediates above it, never the root.
  const caIsRoot = new X509Certificate(o.ca.certPem).checkIssued(new X509Certificate(o.ca.certPem));
  const chainPem = caIsRoot ? certPem : certPem + o.ca.chainPem;
  return o.spiffeId !== undefined ? { certPem, keyPem, chainPem, spiffeId: o.spiffeId } : { certPem, keyPem, chainPem };
}

/** Wraps an intermediate so it can be used as `ca` for issueWorkload. */
export function asIssuer(inter: MintedCert, trustDomain: string): CaHandle {
  return { ...inter, trustDomain };
}
