// mTLS scenarios: SPIFFE-style test certificates made with openssl into the run's temp
// dir, the client-certificate shim for wrk/h2load (client-cert-shim.c), and readiness
// checks over TLS 1.3 with a client certificate.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http2 from 'node:http2';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const TRUST_DOMAIN = 'cluster.local';
export const SERVER_ID = `spiffe://${TRUST_DOMAIN}/ns/bench/sa/server`;
export const CLIENT_ID = `spiffe://${TRUST_DOMAIN}/ns/bench/sa/client`;
/** The name clients verify and send as SNI; in the server certificate's DNS SANs. */
export const SERVER_NAME = 'server.bench.svc';

function openssl(args, cwd) {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr || r.error}`);
}

/**
 * A root CA and two leaves signed by it, all ECDSA P-256 (the dev CA's default), as a
 * mesh issues them: the server's with its SPIFFE ID and DNS name, the client's with its
 * SPIFFE ID only (URI SAN), extendedKeyUsage serverAuth+clientAuth like Istio's.
 */
export function makeCerts(dir) {
  const d = join(dir, 'pki');
  mkdirSync(d, { recursive: true });
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], d);
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '2', '-subj', `/O=${TRUST_DOMAIN}/CN=bench root`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'ca.crt'], d);
  const leaf = (name, san) => {
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.ec.key`], d);
    // PKCS#8: what every consumer here reads (nginx, HAProxy, node, OpenSSL's SSL_CTX).
    openssl(['pkcs8', '-topk8', '-nocrypt', '-in', `${name}.ec.key`, '-out', `${name}.key`], d);
    openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/O=${TRUST_DOMAIN}`, '-out', `${name}.csr`], d);
    writeFileSync(join(d, `${name}.ext`), [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=critical,${san}`,
    ].join('\n') + '\n');
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-sha256',
      '-extfile', `${name}.ext`, '-out', `${name}.crt`], d);
    // Leaf + issuer: the chain a server presents (HAProxy wants cert and key in one file too).
    const chain = readFileSync(join(d, `${name}.crt`), 'utf8') + readFileSync(join(d, 'ca.crt'), 'utf8');
    writeFileSync(join(d, `${name}.chain.crt`), chain);
    writeFileSync(join(d, `${name}.pem`), chain + readFileSync(join(d, `${name}.key`), 'utf8'));
  };
  leaf('server', `URI:${SERVER_ID},DNS:${SERVER_NAME}`);
  leaf('client', `URI:${CLIENT_ID}`);
  const p = (f) => join(d, f);
  return {
    dir: d, ca: p('ca.crt'),
    serverChain: p('server.chain.crt'), serverKey: p('server.key'), serverPem: p('server.pem'),
    clientChain: p('client.chain.crt'), clientKey: p('client.key'),
  };
}

/** Compiles the LD_PRELOAD shim that gives wrk and h2load a client certificate; returns the .so path. */
export function buildClientCertShim(dir) {
  const out = join(dir, 'client-cert-shim.so');
  const r = spawnSync('cc', ['-O2', '-shared', '-fPIC', '-o', out, join(here, 'client-cert-shim.c'), '-ldl'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot build the client-certificate shim (cc): ${r.stderr || r.error}`);
  return out;
}

/** Environment for a load generator that must present the client certificate. */
export function loadgenEnv(pki, shim) {
  return { ...process.env, LD_PRELOAD: shim, PF_BENCH_CLIENT_CERT: pki.clientChain, PF_BENCH_CLIENT_KEY: pki.clientKey };
}

function tlsOptions(pki) {
  return {
    ca: readFileSync(pki.ca), cert: readFileSync(pki.clientChain), key: readFileSync(pki.clientKey),
    servername: SERVER_NAME, minVersion: 'TLSv1.3', rejectUnauthorized: true,
    // The server must be the one we minted for: its SPIFFE ID, not just any name under our CA.
    checkServerIdentity: (_host, cert) => (cert.subjectaltname?.split(', ').includes(`URI:${SERVER_ID}`) ? undefined : new Error(`server is not ${SERVER_ID}: ${cert.subjectaltname}`)),
  };
}

function getH1(url, pki) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ...tlsOptions(pki), agent: false, timeout: 2000 }, (res) => {
      const tlsInfo = { protocol: res.socket.getProtocol(), cipher: res.socket.getCipher()?.standardName, alpn: res.socket.alpnProtocol || null };
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body, tls: tlsInfo }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function getH2(url, pki) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, tlsOptions(pki));
    const fail = (e) => { session.destroy(); reject(e); };
    session.on('error', fail);
    session.setTimeout(2000, () => fail(new Error('timeout')));
    const req = session.request({ ':path': new URL(url).pathname });
    let status = 0, body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => (status = h[':status']));
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const s = session.socket;
      const tlsInfo = { protocol: s.getProtocol?.(), cipher: s.getCipher?.()?.standardName, alpn: session.alpnProtocol ?? null };
      session.close();
      resolve({ status, body, tls: tlsInfo });
    });
    req.on('error', fail);
  });
}

/** True when the server refuses a TLS client that presents no certificate (it must require one). */
function refusesAnonymous(url) {
  return new Promise((resolve) => {
    const req = https.get(url, { servername: SERVER_NAME, rejectUnauthorized: false, agent: false, timeout: 2000, minVersion: 'TLSv1.3' }, (res) => {
      res.resume();
      // nginx answers 400 "No required SSL certificate was sent"; anything but the origin's 200 is a refusal.
      res.on('end', () => resolve(res.statusCode !== 200));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(true));
  });
}

/**
 * Waits until `url` answers 200 with `body` over TLS 1.3 with the client certificate
 * (HTTP/1.1 without ALPN, as wrk connects; or h2 by ALPN when `h2`), then checks that a
 * client without a certificate is refused. Returns what was negotiated.
 */
export async function waitReadyTls({ url, body, pki, h2 = false, timeoutMs = 20000, proc }) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    if (proc && !proc.running) {
      const tail = proc.log().trim().split('\n').slice(-3).join(' | ');
      throw new Error(`process exited before ready: ${tail || '(no output)'}`);
    }
    try {
      const r = await (h2 ? getH2(url, pki) : getH1(url, pki));
      if (r.status === 200 && r.body === body) {
        if (r.tls.protocol !== 'TLSv1.3') throw new Error(`negotiated ${r.tls.protocol}, not TLSv1.3`);
        if (!h2 && !(await refusesAnonymous(url))) throw new Error('served a client without a certificate: not mTLS');
        return r.tls;
      }
      last = `status ${r.status}, body ${JSON.stringify(r.body.slice(0, 80))}`;
    } catch (e) {
      if (/not TLSv1\.3|not mTLS/.test(e.message)) throw e;
      last = String(e.message ?? e);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${h2 ? 'h2' : 'HTTP/1.1'} over mTLS ${url} not ready after ${timeoutMs} ms: ${last}`);
}
