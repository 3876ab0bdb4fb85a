import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runCertsCommand } from '../src/index.js';
import { tmpDir } from './helpers.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s: string) => { out.push(s); }, err: (s: string) => { err.push(s); } } };
}

t.test('init + issue mint a P-256 root and a SPIFFE workload cert that chains to it', async (t) => {
  const dir = join(await tmpDir(t), 'ca');
  const a = io();
  t.equal(await runCertsCommand(['init', '--dir', dir, '--trust-domain', 'example.org'], a.io), 0, a.err.join(''));
  const b = io();
  t.equal(await runCertsCommand(['issue', '--dir', dir, '--spiffe-id', 'spiffe://example.org/ns/default/sa/web', '--dns', 'web.local', '--days', '2'], b.io), 0, b.err.join(''));
  const root = new X509Certificate(await readFile(join(dir, 'root.crt')));
  const leaf = new X509Certificate(await readFile(join(dir, 'web.crt')));
  t.ok(root.ca);
  t.equal(root.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.ok(leaf.checkIssued(root) && leaf.verify(root.publicKey));
  t.equal(leaf.subjectAltName, 'URI:spiffe://example.org/ns/default/sa/web, DNS:web.local');
  const days = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 86_400_000;
  t.ok(days > 1.9 && days < 2.1, `${days} days`);
  t.equal((await stat(join(dir, 'web.key'))).mode & 0o777, 0o600, 'key is private');
  t.equal((await stat(join(dir, 'root.key'))).mode & 0o777, 0o600);
  const c = io();
  t.equal(await runCertsCommand(['init', '--dir', dir, '--trust-domain', 'example.org'], c.io), 2, 'refuses to overwrite a root');
  t.match(c.err.join(''), /exists/);
});

t.test('--help everywhere; bad flags give one line and exit 2', async (t) => {
  for (const argv of [['--help'], ['init', '--help'], ['issue', '--help']]) {
    const x = io();
    t.equal(await runCertsCommand(argv, x.io), 0);
    t.match(x.out.join(''), /usage: pilotfish certs/);
  }
  const dir = await tmpDir(t);
  for (const argv of [
    [],
    ['frobnicate'],
    ['init', '--dir', dir],
    ['init', '--dir', dir, '--trust-domain', 'Example.ORG'],
    ['init', '--dir', dir, '--trust-domain', 'example.org', '--days', 'ten'],
    ['init', '--bogus'],
    ['issue', '--dir', dir, '--spiffe-id', 'http://nope'],
    ['issue', '--dir', dir, '--spiffe-id', 'spiffe://example.org/x'],
    ['issue', '--dir', dir, '--spiffe-id', 'spiffe://example.org/x', '--dns', 'bad name'],
  ]) {
    const x = io();
    t.equal(await runCertsCommand(argv, x.io), 2, argv.join(' '));
    if (argv.length > 0) {
      t.equal(x.err.length, 1, `one line for ${argv.join(' ')}`);
      t.match(x.err[0], /^pilotfish certs: [^\n]+\n$/);
    }
  }
});
