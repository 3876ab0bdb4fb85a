/**
 * The mesh description: short YAML for humans that compiles to Envoy resources.
 *
 *   listeners:
 *     - name: ingress            # also names its RDS route configuration
 *       port: 10000              # address defaults to 0.0.0.0
 *       routes:
 *         - prefix: /api         # or `path: /exact`
 *           service: api         # or `split: {web-v1: 90, web-v2: 10}`
 *           timeout: 5s
 *     - name: greeter.example    # `grpc: true`: an API listener for gRPC xDS clients (xds:///greeter.example)
 *       grpc: true
 *       routes: [{prefix: /, service: greeter}]
 *   services:
 *     - name: web
 *       lb: round_robin          # least_request | ring_hash | maglev | random
 *       connect_timeout: 1s
 *       protocol: http1          # http2
 *       leds: false              # true: endpoints as individual LEDS resources (delta clients)
 *       endpoints:               # EndpointSlice-like
 *         - {address: 10.0.0.1, port: 8080, zone: a, weight: 1, ready: true, serving: true, terminating: false}
 *       peer: spiffe://example.org/ns/default/sa/web   # mTLS: the SPIFFE ID its endpoints must present
 *       tls: true                # false: plaintext to this service even when the mesh has `tls`
 *   tls:                         # optional: mTLS between the proxies this control plane configures
 *     certificate: /certs/waypoint.chain.crt      # files on the proxy's filesystem (not ours)
 *     private_key: /certs/waypoint.key
 *     ca: /certs/root.crt
 *     trust_domain: example.org  # listeners accept client certificates with any ID in it
 *
 * With `tls`, every listener except gRPC API listeners (and those with `tls: false`)
 * requires a client certificate from `ca` whose URI SAN is in `trust_domain`, and every
 * cluster connects with mTLS, checking the endpoint's URI SAN: exactly `peer` when set,
 * else any ID in the trust domain.
 *
 * Errors are one line and name the field: `services[0].endpoints[2].port: must be 1..65535`.
 */
import { parse as parseYaml } from 'yaml';

export interface MeshEndpoint {
  readonly address: string;
  readonly port: number;
  readonly zone: string;
  readonly weight: number;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
}

export interface MeshService {
  readonly name: string;
  readonly lb: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RING_HASH' | 'MAGLEV' | 'RANDOM';
  readonly connectTimeout: string;
  readonly protocol: 'http1' | 'http2';
  readonly leds: boolean;
  readonly endpoints: readonly MeshEndpoint[];
  /** mTLS to this service's endpoints when the mesh has `tls` (default true). */
  readonly tls?: boolean;
  /** The SPIFFE ID its endpoints must present (mTLS); unset: any in the trust domain. */
  readonly peer?: string;
}

export interface MeshRoute {
  readonly match: { readonly prefix: string } | { readonly path: string };
  readonly target: { readonly service: string } | { readonly split: Readonly<Record<string, number>> };
  readonly timeout?: string;
}

export interface MeshListener {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly grpc: boolean;
  readonly domains: readonly string[];
  readonly routes: readonly MeshRoute[];
  /** Requires mesh client certificates when the mesh has `tls` (default true). */
  readonly tls?: boolean;
}

/** mTLS material for the proxies: file names as the proxy sees them. */
export interface MeshTls {
  readonly certificate: string;
  readonly privateKey: string;
  readonly ca: string;
  readonly trustDomain: string;
}

export interface Mesh {
  readonly listeners: readonly MeshListener[];
  readonly services: readonly MeshService[];
  readonly tls?: MeshTls;
}

export class MeshError extends Error {}

const LB = { round_robin: 'ROUND_ROBIN', least_request: 'LEAST_REQUEST', ring_hash: 'RING_HASH', maglev: 'MAGLEV', random: 'RANDOM' } as const;

type Obj = Record<string, unknown>;

function fail(path: string, msg: string): never {
  throw new MeshError(`${path}: ${msg}`);
}

function obj(v: unknown, path: string): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(path, 'expected a mapping');
  return v as Obj;
}

function only(o: Obj, path: string, keys: readonly string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`${path}.${k}`, `unknown field (expected one of ${keys.join(', ')})`);
}

function str(o: Obj, k: string, path: string, fallback?: string): string {
  const v = o[k];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    fail(`${path}.${k}`, 'is required');
  }
  if (typeof v !== 'string' || v === '') fail(`${path}.${k}`, 'must be a non-empty string');
  return v;
}

function bool(o: Obj, k: string, path: string, fallback: boolean): boolean {
  const v = o[k];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') fail(`${path}.${k}`, 'must be true or false');
  return v;
}

function int(o: Obj, k: string, path: string, min: number, max: number, fallback?: number): number {
  const v = o[k];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    fail(`${path}.${k}`, 'is required');
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(`${path}.${k}`, `must be an integer ${min}..${max}`);
  return v;
}

function list(o: Obj, k: string, path: string): unknown[] {
  const v = o[k];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(`${path}.${k}`, 'must be a list');
  return v;
}

function duration(o: Obj, k: string, path: string, fallback?: string): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string' || !/^\d+(\.\d{1,9})?s$|^\d+ms$/.test(v)) fail(`${path}.${k}`, 'must be a duration like 1s, 0.5s or 250ms');
  return v.endsWith('ms') ? `${Number(v.slice(0, -2)) / 1000}s` : v;
}

export function parseEndpoint(v: unknown, path: string): MeshEndpoint {
  const o = obj(v, path);
  only(o, path, ['address', 'port', 'zone', 'weight', 'ready', 'serving', 'terminating']);
  const address = str(o, 'address', path);
  if (!/^[0-9a-fA-F:.]+$/.test(address)) fail(`${path}.address`, 'must be an IP address');
  return {
    address,
    port: int(o, 'port', path, 1, 65535),
    zone: str(o, 'zone', path, ''),
    weight: int(o, 'weight', path, 1, 128, 1),
    ready: bool(o, 'ready', path, true),
    serving: bool(o, 'serving', path, true),
    terminating: bool(o, 'terminating', path, false),
  };
}

const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)+$/;

function parseTls(v: unknown): MeshTls {
  const path = '(mesh).tls';
  const o = obj(v, path);
  only(o, path, ['certificate', 'private_key', 'ca', 'trust_domain']);
  const trustDomain = str(o, 'trust_domain', path);
  if (!/^[a-z0-9._-]+$/.test(trustDomain)) fail(`${path}.trust_domain`, 'must be a SPIFFE trust domain (lower-case letters, digits, ".", "-", "_")');
  return { certificate: str(o, 'certificate', path), privateKey: str(o, 'private_key', path), ca: str(o, 'ca', path), trustDomain };
}

export function parseMesh(doc: unknown): Mesh {
  const root = obj(doc ?? {}, '(mesh)');
  only(root, '(mesh)', ['listeners', 'services', 'tls']);
  const tls = root.tls === undefined || root.tls === null ? undefined : parseTls(root.tls);
  const services = list(root, 'services', '(mesh)').map((sv, i): MeshService => {
    const path = `services[${i}]`;
    const o = obj(sv, path);
    only(o, path, ['name', 'lb', 'connect_timeout', 'protocol', 'leds', 'endpoints', 'tls', 'peer']);
    const lbName = str(o, 'lb', path, 'round_robin');
    const lb = (LB as Record<string, MeshService['lb']>)[lbName];
    if (lb === undefined) fail(`${path}.lb`, `must be one of ${Object.keys(LB).join(', ')}`);
    const protocol = str(o, 'protocol', path, 'http1');
    if (protocol !== 'http1' && protocol !== 'http2') fail(`${path}.protocol`, 'must be http1 or http2');
    return {
      name: str(o, 'name', path),
      lb,
      connectTimeout: duration(o, 'connect_timeout', path, '1s')!,
      protocol,
      leds: bool(o, 'leds', path, false),
      endpoints: list(o, 'endpoints', path).map((e, j) => parseEndpoint(e, `${path}.endpoints[${j}]`)),
      ...tlsFields(o, path, tls),
    };
  });
  const names = new Set<string>();
  services.forEach((s, i) => {
    if (names.has(s.name)) fail(`services[${i}].name`, `duplicate service "${s.name}"`);
    names.add(s.name);
  });
  const listeners = list(root, 'listeners', '(mesh)').map((lv, i): MeshListener => {
    const path = `listeners[${i}]`;
    const o = obj(lv, path);
    only(o, path, ['name', 'address', 'port', 'grpc', 'domains', 'routes', 'tls']);
    const grpc = bool(o, 'grpc', path, false);
    const routes = list(o, 'routes', path).map((rv, j): MeshRoute => {
      const rp = `${path}.routes[${j}]`;
      const r = obj(rv, rp);
      only(r, rp, ['prefix', 'path', 'service', 'split', 'timeout']);
      if ((r.prefix === undefined) === (r.path === undefined)) fail(rp, 'needs exactly one of prefix, path');
      const match = r.prefix !== undefined ? { prefix: str(r, 'prefix', rp) } : { path: str(r, 'path', rp) };
      if ((r.service === undefined) === (r.split === undefined)) fail(rp, 'needs exactly one of service, split');
      let target: MeshRoute['target'];
      if (r.service !== undefined) {
        const service = str(r, 'service', rp);
        if (!names.has(service)) fail(`${rp}.service`, `unknown service "${service}"`);
        target = { service };
      } else {
        const split = obj(r.split, `${rp}.split`);
        if (Object.keys(split).length === 0) fail(`${rp}.split`, 'must name at least one service');
        for (const [svc, w] of Object.entries(split)) {
          if (!names.has(svc)) fail(`${rp}.split.${svc}`, `unknown service "${svc}"`);
          if (typeof w !== 'number' || !Number.isInteger(w) || w < 0) fail(`${rp}.split.${svc}`, 'weight must be a non-negative integer');
        }
        target = { split: split as Record<string, number> };
      }
      const timeout = duration(r, 'timeout', rp);
      return { match, target, ...(timeout !== undefined ? { timeout } : {}) };
    });
    const domains = list(o, 'domains', path).map((d, j) => {
      if (typeof d !== 'string' || d === '') fail(`${path}.domains[${j}]`, 'must be a non-empty string');
      return d;
    });
    return {
      name: str(o, 'name', path),
      address: str(o, 'address', path, '0.0.0.0'),
      // 0 lets the proxy pick a free port (tests).
      port: grpc ? int(o, 'port', path, 0, 65535, 0) : int(o, 'port', path, 0, 65535),
      grpc,
      domains: domains.length > 0 ? domains : ['*'],
      routes,
      ...(o.tls !== undefined ? { tls: bool(o, 'tls', path, true) } : {}),
    };
  });
  const lnames = new Set<string>();
  listeners.forEach((l, i) => {
    if (lnames.has(l.name)) fail(`listeners[${i}].name`, `duplicate listener "${l.name}"`);
    lnames.add(l.name);
  });
  return { listeners, services, ...(tls ? { tls } : {}) };
}

function tlsFields(o: Obj, path: string, tls: MeshTls | undefined): { tls?: boolean; peer?: string } {
  const out: { tls?: boolean; peer?: string } = {};
  if (o.tls !== undefined) out.tls = bool(o, 'tls', path, true);
  if (o.peer !== undefined) {
    const peer = str(o, 'peer', path);
    if (!SPIFFE_ID.test(peer)) fail(`${path}.peer`, 'must be a SPIFFE ID like spiffe://example.org/ns/default/sa/web');
    if (tls && !peer.startsWith(`spiffe://${tls.trustDomain}/`)) fail(`${path}.peer`, `is not in the mesh trust domain ${tls.trustDomain}`);
    out.peer = peer;
  }
  return out;
}

const TLS_SOCKET = 'envoy.transport_sockets.tls';

function commonTls(t: MeshTls, san: { exact: string } | { prefix: string }): Record<string, unknown> {
  return {
    tls_certificates: [{ certificate_chain: { filename: t.certificate }, private_key: { filename: t.privateKey } }],
    validation_context: { trusted_ca: { filename: t.ca }, match_typed_subject_alt_names: [{ san_type: 'URI', matcher: san }] },
  };
}

/** The listener side of mesh mTLS (a filter chain's transport_socket), or undefined for plaintext. */
export function listenerTransportSocket(mesh: Mesh, l: MeshListener): Record<string, unknown> | undefined {
  if (!mesh.tls || l.grpc || l.tls === false) return undefined;
  return {
    name: TLS_SOCKET,
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      require_client_certificate: true,
      common_tls_context: commonTls(mesh.tls, { prefix: `spiffe://${mesh.tls.trustDomain}/` }),
    },
  };
}

/** The cluster side of mesh mTLS (a cluster's transport_socket), or undefined for plaintext. */
export function clusterTransportSocket(mesh: Mesh, s: MeshService): Record<string, unknown> | undefined {
  if (!mesh.tls || s.tls === false) return undefined;
  return {
    name: TLS_SOCKET,
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      sni: s.name,
      common_tls_context: commonTls(mesh.tls, s.peer !== undefined ? { exact: s.peer } : { prefix: `spiffe://${mesh.tls.trustDomain}/` }),
    },
  };
}

export function parseMeshText(text: string): Mesh {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new MeshError(`(mesh): invalid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  return parseMesh(doc);
}
