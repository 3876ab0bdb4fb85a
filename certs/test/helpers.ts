/** Test fixtures: a throw-away PKI, mTLS servers on 127.0.0.1:0 and clients. Not a test file. */
import https from 'node:https';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Diagnostics } from '../../config/src/validation.js';
import { DEFAULT_WAIT_MS, eventually } from '../../test-support/wait.js';
import {
  decodeDownstreamTlsContext,
  DownstreamTlsProvider,
  issueWorkload,
  mintRoot,
  SecretStore,
  type CaHandle,
  type DownstreamProviderOptions,
  type DownstreamTlsContextSpec,
  type MintedCert,
  type TlsLogger,
} from '../src/index.js';

export interface Pki {
  readonly root: CaHandle;
  readonly server: MintedCert;
  readonly client: MintedCert;
}

export async function makePki(trustDomain = 'example.org', clientId = `spiffe://${trustDomain}/ns/default/sa/web`): Promise<Pki> {
  const root = await mintRoot({ trustDomain });
  const [server, client] = await Promise.all([
    issueWorkload({ ca: root, spiffeId: `spiffe://${trustDomain}/ns/default/sa/server`, dns: ['localhost'] }),
    issueWorkload({ ca: root, spiffeId: clientId }),
  ]);
  return { root, server, client };
}

export function inline(s: string): { inline_string: string } {
  return { inline_string: s };
}

export function decodeDownstream(config: unknown): DownstreamTlsContextSpec {
  const diag = new Diagnostics();
  const spec = decodeDownstreamTlsContext(config, diag);
  if (!spec) throw new Error(`decode failed: ${JSON.stringify(diag.errors)}`);
  return spec;
}

/** A DownstreamTlsContext requiring client certs, with inline material. */
export function mtlsConfig(pki: { root: CaHandle; server: MintedCert }, extraValidation: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    require_client_certificate: true,
    common_tls_context: {
      tls_certificates: [{ certificate_chain: inline(pki.server.chainPem), private_key: inline(pki.server.keyPem) }],
      validation_context: { trusted_ca: inline(pki.root.certPem), ...extraValidation },
    },
  };
}

export interface Logs {
  readonly lines: string[];
  readonly log: TlsLogger;
}

export function captureLogs(): Logs {
  const lines: string[] = [];
  return { lines, log: (level, m) => { lines.push(`${level} ${m}`); } };
}

export interface TestServer {
  readonly port: number;
  readonly server: https.Server;
  readonly provider: DownstreamTlsProvider;
  readonly store: SecretStore;
  readonly identities: (string | undefined)[];
  close(): Promise<void>;
}

/** An https server wired through a DownstreamTlsProvider; answers with the peer's SPIFFE ID. */
export async function startServer(spec: DownstreamTlsContextSpec, opts: DownstreamProviderOptions & { store?: SecretStore } = {}): Promise<TestServer> {
  const { peerIdentity } = await import('../src/index.js');
  const store = opts.store ?? new SecretStore({ pollIntervalMs: 0 });
  const provider = new DownstreamTlsProvider(spec, store, opts);
  await provider.whenReady(5000);
  const identities: (string | undefined)[] = [];
  const server = https.createServer(provider.serverOptions(['http/1.1']), (req, res) => {
    const id = peerIdentity(req.socket)?.spiffeId;
    identities.push(id);
    res.end(id ?? 'anonymous');
  });
  provider.attach(server);
  server.keepAliveTimeout = 100;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port, server, provider, store, identities,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      provider.close();
      if (!opts.store) store.close();
    },
  };
}

export interface ClientOpts {
  readonly cert?: string;
  readonly key?: string;
  readonly ca: string | string[];
  readonly maxVersion?: tls.SecureVersion;
  readonly minVersion?: tls.SecureVersion;
  readonly session?: Buffer;
}

export interface RequestResult {
  readonly ok: boolean;
  readonly status?: number;
  readonly body?: string;
  readonly error?: string;
  readonly protocol?: string | null;
  readonly reused?: boolean;
  readonly session?: Buffer;
}

/** One GET on a fresh connection (agent: false). Never rejects. */
export function request(port: number, o: ClientOpts, timeoutMs = 5000): Promise<RequestResult> {
  return new Promise((resolve) => {
    let session: Buffer | undefined;
    let protocol: string | null = null;
    let reused = false;
    let settled = false;
    const done = (r: RequestResult) => { if (!settled) { settled = true; clearTimeout(timer); resolve(r); } };
    const req = https.request({
      host: '127.0.0.1', port, path: '/', method: 'GET', agent: false, servername: 'localhost',
      ca: o.ca, ...(o.cert ? { cert: o.cert, key: o.key } : {}),
      minVersion: o.minVersion ?? 'TLSv1.2', maxVersion: o.maxVersion ?? 'TLSv1.3',
      ...(o.session ? { session: o.session } : {}),
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => {
        // TLS 1.3 tickets arrive after the handshake; give them a moment.
        setImmediate(() => done({ ok: true, status: res.statusCode!, body, protocol, reused, ...(session ? { session } : {}) }));
      });
      res.on('error', (e) => done({ ok: false, error: e.message }));
    });
    req.on('socket', (s) => {
      const ts = s as tls.TLSSocket;
      ts.on('session', (b: Buffer) => { session = b; });
      ts.once('secureConnect', () => { protocol = ts.getProtocol(); reused = ts.isSessionReused(); });
    });
    req.on('error', (e) => done({ ok: false, error: `${(e as { code?: string }).code ?? ''} ${e.message}` }));
    const timer = setTimeout(() => { req.destroy(); done({ ok: false, error: 'timeout' }); }, timeoutMs);
    req.end();
  });
}

export async function tmpDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'pilotfish-certs-test-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

export async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  await Promise.all(Object.entries(files).map(([n, c]) => writeFile(join(dir, n), c)));
}

/** True once `pred` holds (polled; the deadline is generous for a loaded machine). */
export function waitFor(pred: () => boolean, timeoutMs = DEFAULT_WAIT_MS, stepMs = 20): Promise<boolean> {
  return eventually(pred, { timeoutMs: Math.max(timeoutMs, DEFAULT_WAIT_MS), intervalMs: stepMs });
}

export { issueWorkload, mintRoot };
