/**
 * Interop: the real `openssl s_client` against a pilotfish mTLS listener.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { issueWorkload, mintRoot } from '../certs/src/index.js';
import { captureLogs, decodeDownstream, makePki, mtlsConfig, startServer, tmpDir, writeFiles, type Pki, type TestServer } from '../certs/test/helpers.js';

function sClient(args: string[], timeoutMs = 30_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-brief', '-ign_eof', '-verify_return_error', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, out }); });
    p.stdin.on('error', () => {});
    p.stdin.end('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  });
}

let pki: Pki;
let dir: string;
let s: TestServer;
const logs = captureLogs();

t.before(async () => {
  pki = await makePki();
  const other = await mintRoot({ trustDomain: 'example.org' });
  const stranger = await issueWorkload({ ca: other, spiffeId: 'spiffe://example.org/ns/default/sa/web' });
  dir = await tmpDir(t);
  await writeFiles(dir, {
    'root.crt': pki.root.certPem,
    'client.crt': pki.client.chainPem,
    'client.key': pki.client.keyPem,
    'stranger.crt': stranger.chainPem,
    'stranger.key': stranger.keyPem,
  });
  s = await startServer(decodeDownstream(mtlsConfig(pki)), { log: logs.log });
});
t.teardown(() => s?.close());

const base = () => ['-connect', `127.0.0.1:${s.port}`, '-servername', 'localhost', '-CAfile', join(dir, 'root.crt')];

t.test('TLS 1.3 handshake with a good client certificate', async (t) => {
  const r = await sClient([...base(), '-tls1_3', '-cert', join(dir, 'client.crt'), '-key', join(dir, 'client.key')]);
  t.match(r.out, /Protocol version: TLSv1\.3/);
  t.match(r.out, /HTTP\/1\.1 200/);
  t.match(r.out, /spiffe:\/\/example\.org\/ns\/default\/sa\/web/);
});

t.test('refused without a client certificate', async (t) => {
  const before = s.provider.stats['ssl.fail_verify_no_cert'];
  const r = await sClient([...base(), '-tls1_3']);
  t.notMatch(r.out, /HTTP\/1\.1 200/);
  t.equal(s.provider.stats['ssl.fail_verify_no_cert'], before + 1);
});

t.test('refused with -tls1_2', async (t) => {
  const before = s.provider.stats['ssl.fail_protocol_version'];
  const r = await sClient([...base(), '-tls1_2', '-cert', join(dir, 'client.crt'), '-key', join(dir, 'client.key')]);
  t.not(r.code, 0);
  t.match(r.out, /alert protocol version|protocol version/i);
  t.notMatch(r.out, /HTTP\/1\.1 200/);
  t.equal(s.provider.stats['ssl.fail_protocol_version'], before + 1);
});

t.test('refused with a client certificate from the wrong CA', async (t) => {
  const before = s.provider.stats['ssl.fail_verify_unknown_ca'];
  const r = await sClient([...base(), '-tls1_3', '-cert', join(dir, 'stranger.crt'), '-key', join(dir, 'stranger.key')]);
  t.notMatch(r.out, /HTTP\/1\.1 200/);
  t.equal(s.provider.stats['ssl.fail_verify_unknown_ca'], before + 1);
  t.ok(logs.lines.some((l) => /unknown CA/.test(l)));
});
