/**
 * Envoy's v3 API protos, loaded once from xds-client/protos/ (vendored by
 * scripts/vendor-envoy-protos.mjs; PROVENANCE.md there says from where), plus conversions between wire messages and the
 * proto3-JSON-ish objects config/'s decoders read.
 *
 * We use protobufjs directly (the library @grpc/proto-loader wraps) because we need the
 * reflection Root to unpack `Any` payloads ourselves: an unknown or undecodable type in
 * one resource must become a NACK, not a torn-down stream.
 */
import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);

const PROTO_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/core/v3/extension.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/clusters/aggregate/v3/cluster.proto',
  'xds/type/v3/typed_struct.proto',
  'udpa/type/v1/typed_struct.proto',
];

/** xds-client/protos, from the sources (xds-client/src) or the compiled output (dist/xds-client/src). */
function protosDir(): string {
  const candidates = [new URL('../protos', import.meta.url), new URL('../../../xds-client/protos', import.meta.url)].map((u) => fileURLToPath(u));
  const found = candidates.find((d) => existsSync(path.join(d, 'envoy-api')));
  if (found === undefined) throw new Error(`Envoy's protos are missing (looked in ${candidates.join(', ')}); run node scripts/vendor-envoy-protos.mjs`);
  return found;
}

function includeDirs(): string[] {
  const base = protosDir();
  const dirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(base, d));
  // google/protobuf/descriptor.proto (for validate/annotations options) ships with protobufjs.
  dirs.push(path.dirname(require.resolve('protobufjs/package.json')));
  return dirs;
}

let root: protobuf.Root | undefined;

/** Optional extra protos (e.g. a filter's config) resolved against the same include dirs. */
export function loadExtraProtos(files: readonly string[]): void {
  const r = envoyRoot();
  r.loadSync(files as string[], { keepCase: true });
  r.resolveAll();
}

export function envoyRoot(): protobuf.Root {
  if (root !== undefined) return root;
  const dirs = includeDirs();
  const r = new protobuf.Root();
  r.resolvePath = (_origin: string, target: string): string | null => {
    if (path.isAbsolute(target)) return target;
    for (const d of dirs) {
      const p = path.join(d, target);
      if (existsSync(p)) return p;
    }
    // protobufjs bundles the well-known google/protobuf/*.proto types.
    return target;
  };
  r.loadSync(PROTO_FILES, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

const triedPackages = new Set<string>();

/**
 * Finds a message type, loading its package on first use: Envoy's layout maps a package
 * `envoy.extensions.filters.http.fault.v3` to the directory of the same path, so a
 * filter config we did not preload (a real control plane sends dozens) still decodes.
 */
export function lookupType(name: string): protobuf.Type | undefined {
  const full = name.replace(/^\./, '');
  const r = envoyRoot();
  const found = tryLookup(r, full);
  if (found !== undefined) return found;
  const pkg = full.slice(0, full.lastIndexOf('.'));
  if (pkg === '' || triedPackages.has(pkg)) return undefined;
  triedPackages.add(pkg);
  const rel = pkg.split('.').join(path.sep);
  for (const d of includeDirs()) {
    const dir = path.join(d, rel);
    if (!existsSync(dir)) continue;
    try {
      const files = readdirSync(dir).filter((f) => f.endsWith('.proto')).map((f) => path.join(rel, f));
      r.loadSync(files, { keepCase: true });
      r.resolveAll();
    } catch {
      return undefined;
    }
    break;
  }
  return tryLookup(r, full);
}

function tryLookup(r: protobuf.Root, full: string): protobuf.Type | undefined {
  try {
    return r.lookupType(full);
  } catch {
    return undefined;
  }
}

export function typeNameOf(typeUrl: string): string {
  return typeUrl.substring(typeUrl.lastIndexOf('/') + 1);
}

// ------------------------------------------------------------------ message -> JSON

/** Any that could not be unpacked (type unknown here): kept so decoders can report it. */
export class UnknownAnyError extends Error {}

/**
 * A decoded message as proto3-JSON-ish data with Envoy's snake_case names: only fields
 * present on the wire, `Any` as `{"@type", ...fields}` (recursively), Struct/Value as
 * plain JSON, wrappers as raw values, Duration as `{seconds, nanos}`, enums by name,
 * 64-bit integers as numbers, bytes as base64.
 */
export function messageToJson(type: protobuf.Type, msg: protobuf.Message | Record<string, unknown>): Record<string, unknown> {
  const full = type.fullName;
  if (full === '.google.protobuf.Any') return anyToJson(msg as unknown as { type_url?: string; value?: Uint8Array });
  if (full === '.google.protobuf.Struct') return structToJson(msg);
  const out: Record<string, unknown> = {};
  const m = msg as Record<string, unknown>;
  // Own properties are exactly the fields present on the wire (plus empty repeated/map
  // containers); defaults and oneof getters live on the prototype.
  for (const key of Object.keys(m)) {
    const field = type.fields[key];
    if (field === undefined) continue;
    const v = m[key];
    if (field.map) {
      const entries = Object.entries((v ?? {}) as Record<string, unknown>);
      if (entries.length === 0) continue;
      const o: Record<string, unknown> = {};
      for (const [k, ev] of entries) o[k] = fieldToJson(field, ev);
      out[field.name] = o;
    } else if (field.repeated) {
      const arr = (v ?? []) as unknown[];
      if (arr.length === 0) continue;
      out[field.name] = arr.map((e) => fieldToJson(field, e));
    } else {
      if (v === null || v === undefined) continue;
      out[field.name] = fieldToJson(field, v);
    }
  }
  return out;
}

function fieldToJson(field: protobuf.Field, v: unknown): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) {
    const fn = rt.fullName;
    if (fn === '.google.protobuf.Any') {
      const a = v as { type_url?: string; value?: Uint8Array };
      // A nested extension of a type nobody here knows: leave the decision (reject a
      // required filter, skip an optional one) to the decoder, which sees only "@type".
      if (lookupType(typeNameOf(a.type_url ?? '')) === undefined) return { '@type': a.type_url ?? '' };
    }
    if (fn === '.google.protobuf.Value') return valueToJson(v as Record<string, unknown>);
    if (fn === '.google.protobuf.ListValue') return listToJson(v as Record<string, unknown>);
    if (WRAPPERS.has(fn)) return scalarToJson((v as { value?: unknown }).value ?? defaultScalar(fn));
    return messageToJson(rt, v as protobuf.Message);
  }
  if (rt instanceof protobuf.Enum) {
    const name = rt.valuesById[v as number];
    return name ?? v;
  }
  return scalarToJson(v);
}

const WRAPPERS = new Set(
  ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map((n) => `.google.protobuf.${n}Value`),
);

function defaultScalar(fullName: string): unknown {
  if (fullName.endsWith('BoolValue')) return false;
  if (fullName.endsWith('StringValue')) return '';
  if (fullName.endsWith('BytesValue')) return '';
  return 0;
}

function scalarToJson(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (typeof v === 'object' && v !== null && 'low' in v && 'high' in v) {
    const l = v as unknown as { toNumber(): number };
    return l.toNumber();
  }
  return v;
}

function structToJson(msg: unknown): Record<string, unknown> {
  const fields = ((msg as { fields?: Record<string, unknown> }).fields ?? {}) as Record<string, Record<string, unknown>>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = valueToJson(v);
  return out;
}

function listToJson(msg: Record<string, unknown>): unknown[] {
  return ((msg.values ?? []) as Record<string, unknown>[]).map(valueToJson);
}

// protobufjs bundles the well-known types with camelCase field names, whatever keepCase says.
function valueToJson(v: Record<string, unknown>): unknown {
  if (v === undefined || v === null) return null;
  if (Object.prototype.hasOwnProperty.call(v, 'numberValue')) return v.numberValue;
  if (Object.prototype.hasOwnProperty.call(v, 'stringValue')) return v.stringValue;
  if (Object.prototype.hasOwnProperty.call(v, 'boolValue')) return v.boolValue;
  if (Object.prototype.hasOwnProperty.call(v, 'structValue')) return structToJson(v.structValue);
  if (Object.prototype.hasOwnProperty.call(v, 'listValue')) return listToJson(v.listValue as Record<string, unknown>);
  return null;
}

/** Unpacks an Any; throws UnknownAnyError when its type is not loaded. */
export function anyToJson(any: { type_url?: string; value?: Uint8Array }): Record<string, unknown> {
  const url = any.type_url ?? '';
  const t = lookupType(typeNameOf(url));
  if (t === undefined) throw new UnknownAnyError(`unknown type ${url}`);
  const inner = t.decode(any.value ?? new Uint8Array());
  return { '@type': url, ...messageToJson(t, inner) };
}

/** Decodes a resource's bytes (an Any's value) of the given type URL into JSON. */
export function decodeResourceJson(typeUrl: string, value: Uint8Array): Record<string, unknown> {
  const t = lookupType(typeNameOf(typeUrl));
  if (t === undefined) throw new UnknownAnyError(`unknown type ${typeUrl}`);
  return messageToJson(t, t.decode(value));
}

// ------------------------------------------------------------------ JSON -> message

/**
 * Encodes proto3-JSON-ish data (snake_case, `Any` as `{"@type"}`, Struct as plain JSON,
 * durations as "1.5s" or `{seconds, nanos}`, wrappers raw or `{value}`) to wire bytes.
 * Throws on data that does not fit the type: the control plane's own bug, not a peer's.
 */
export function encodeJson(typeUrlOrName: string, json: Record<string, unknown>): Uint8Array {
  const t = lookupType(typeNameOf(typeUrlOrName));
  if (t === undefined) throw new Error(`unknown type ${typeUrlOrName}`);
  return t.encode(t.fromObject(jsonToObject(t, json))).finish();
}

/** Rewrites JSON into the object shape protobufjs' fromObject accepts. */
function jsonToObject(type: protobuf.Type, json: Record<string, unknown>): Record<string, unknown> {
  const fn = type.fullName;
  if (fn === '.google.protobuf.Any') {
    const url = String(json['@type'] ?? '');
    const { '@type': _drop, ...rest } = json;
    return { type_url: url, value: encodeJson(url, rest) };
  }
  if (fn === '.google.protobuf.Struct') return structFromJson(json);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) {
    const field = type.fields[k];
    if (field === undefined) throw new Error(`${fn.slice(1)} has no field ${k}`);
    if (field.map) {
      const o: Record<string, unknown> = {};
      for (const [mk, mv] of Object.entries(v as Record<string, unknown>)) o[mk] = fieldFromJson(field, mv);
      out[k] = o;
    } else if (field.repeated) {
      out[k] = (v as unknown[]).map((e) => fieldFromJson(field, e));
    } else {
      out[k] = fieldFromJson(field, v);
    }
  }
  return out;
}

function fieldFromJson(field: protobuf.Field, v: unknown): unknown {
  const rt = field.resolvedType;
  if (!(rt instanceof protobuf.Type)) return v;
  const fn = rt.fullName;
  if (fn === '.google.protobuf.Duration' && typeof v === 'string') return durationFromString(v);
  if (fn === '.google.protobuf.Value') return valueFromJson(v);
  if (WRAPPERS.has(fn) && (typeof v !== 'object' || v === null)) return { value: v };
  return jsonToObject(rt, v as Record<string, unknown>);
}

function durationFromString(s: string): { seconds: number; nanos: number } {
  const m = /^(-?\d+)(?:\.(\d{1,9}))?s$/.exec(s);
  if (m === null) throw new Error(`bad duration ${s}`);
  const frac = (m[2] ?? '').padEnd(9, '0');
  return { seconds: Number(m[1]), nanos: Number(frac) };
}

function structFromJson(json: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) fields[k] = valueFromJson(v);
  return { fields };
}

function valueFromJson(v: unknown): Record<string, unknown> {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(valueFromJson) } };
  return { structValue: structFromJson(v as Record<string, unknown>) };
}

// ------------------------------------------------------------------ discovery messages

export interface WireAny {
  readonly type_url: string;
  readonly value: Uint8Array;
}

export interface WireNode {
  readonly id: string;
  readonly cluster: string;
  readonly metadata?: Record<string, unknown>;
  readonly locality?: { region?: string; zone?: string; sub_zone?: string };
  readonly user_agent_name?: string;
  readonly user_agent_version?: string;
  readonly client_features?: string[];
}

export interface ErrorDetail {
  readonly code: number;
  readonly message: string;
}

export interface DiscoveryRequest {
  version_info: string;
  node?: WireNode;
  resource_names: string[];
  type_url: string;
  response_nonce: string;
  error_detail?: ErrorDetail;
}

export interface DiscoveryResponse {
  version_info: string;
  resources: WireAny[];
  type_url: string;
  nonce: string;
}

export interface DeltaDiscoveryRequest {
  node?: WireNode;
  type_url: string;
  resource_names_subscribe: string[];
  resource_names_unsubscribe: string[];
  initial_resource_versions: Record<string, string>;
  response_nonce: string;
  error_detail?: ErrorDetail;
}

export interface WireResource {
  readonly name: string;
  readonly version: string;
  readonly resource?: WireAny;
  readonly aliases?: string[];
}

export interface DeltaDiscoveryResponse {
  system_version_info: string;
  resources: WireResource[];
  type_url: string;
  removed_resources: string[];
  nonce: string;
}

const DISCOVERY = 'envoy.service.discovery.v3.';

function codec<T>(name: string): { encode(v: T): Buffer; decode(b: Buffer): T } {
  let t: protobuf.Type | undefined;
  const type = (): protobuf.Type => (t ??= envoyRoot().lookupType(DISCOVERY + name));
  return {
    encode(v: T): Buffer {
      const ty = type();
      const obj = { ...(v as Record<string, unknown>) };
      if (obj.node !== undefined) obj.node = jsonToObject(ty.fields.node!.resolvedType as protobuf.Type, obj.node as Record<string, unknown>);
      return Buffer.from(ty.encode(ty.fromObject(obj)).finish());
    },
    decode(b: Buffer): T {
      const ty = type();
      const msg = ty.decode(b);
      const o = ty.toObject(msg, { defaults: true, arrays: true, objects: true, longs: Number, enums: Number, bytes: Array }) as Record<string, unknown>;
      // Keep Any payloads as raw bytes: decoding them is the resource plugin's job.
      const raw = msg as unknown as Record<string, unknown>;
      if (Array.isArray(raw.resources)) o.resources = raw.resources.map(rawResource);
      if (raw.node !== undefined && raw.node !== null) o.node = messageToJson(ty.fields.node!.resolvedType as protobuf.Type, raw.node as protobuf.Message);
      else delete o.node;
      if (raw.error_detail === undefined || raw.error_detail === null) delete o.error_detail;
      return o as T;
    },
  };
}

function rawResource(r: Record<string, unknown>): unknown {
  if ('type_url' in r) return { type_url: String(r.type_url ?? ''), value: r.value as Uint8Array };
  const res = r.resource as Record<string, unknown> | null | undefined;
  return {
    name: String(r.name ?? ''),
    version: String(r.version ?? ''),
    aliases: (r.aliases as string[] | undefined) ?? [],
    ...(res ? { resource: { type_url: String(res.type_url ?? ''), value: res.value as Uint8Array } } : {}),
  };
}

export const codecs = {
  request: codec<DiscoveryRequest>('DiscoveryRequest'),
  response: codec<DiscoveryResponse>('DiscoveryResponse'),
  deltaRequest: codec<DeltaDiscoveryRequest>('DeltaDiscoveryRequest'),
  deltaResponse: codec<DeltaDiscoveryResponse>('DeltaDiscoveryResponse'),
};

export const ADS_SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService/';
export const SOTW_METHOD = ADS_SERVICE + 'StreamAggregatedResources';
export const DELTA_METHOD = ADS_SERVICE + 'DeltaAggregatedResources';
/** The non-aggregated SDS service (Envoy's `api_config_source` for secrets; pilot-agent serves it). */
export const SDS_SERVICE = '/envoy.service.secret.v3.SecretDiscoveryService/';
export const SDS_SOTW_METHOD = SDS_SERVICE + 'StreamSecrets';
export const SDS_DELTA_METHOD = SDS_SERVICE + 'DeltaSecrets';
