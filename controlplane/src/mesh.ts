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
}

export interface Mesh {
  readonly listeners: readonly MeshListener[];
  readonly services: readonly MeshService[];
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

export function parseMesh(doc: unknown): Mesh {
  const root = obj(doc ?? {}, '(mesh)');
  only(root, '(mesh)', ['listeners', 'services']);
  const services = list(root, 'services', '(mesh)').map((sv, i): MeshService => {
    const path = `services[${i}]`;
    const o = obj(sv, path);
    only(o, path, ['name', 'lb', 'connect_timeout', 'protocol', 'leds', 'endpoints']);
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
    only(o, path, ['name', 'address', 'port', 'grpc', 'domains', 'routes']);
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
    };
  });
  const lnames = new Set<string>();
  listeners.forEach((l, i) => {
    if (lnames.has(l.name)) fail(`listeners[${i}].name`, `duplicate listener "${l.name}"`);
    lnames.add(l.name);
  });
  return { listeners, services };
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
