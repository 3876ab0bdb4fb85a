/**
 * A workload's identity as Istio's telemetry sees it (istio/proxy's
 * WorkloadMetadataObject): read from the local node's metadata (what pilot-agent writes
 * into the bootstrap) or from a peer's exchanged metadata, and written back into the Struct
 * the exchange sends. Field and label names are Istio's.
 */
import type { JsonStruct, JsonValue } from './struct-codec.js';

export interface WorkloadMetadata {
  /** Pod name (NAME). */
  readonly instanceName: string;
  readonly namespace: string;
  /** Deployment (or other owner) name (WORKLOAD_NAME). */
  readonly workloadName: string;
  /** CLUSTER_ID. */
  readonly clusterId: string;
  readonly canonicalName: string;
  readonly canonicalRevision: string;
  /** LABELS.app. */
  readonly appName: string;
  /** LABELS.version. */
  readonly appVersion: string;
  /** OWNER (kubernetes://apis/apps/v1/namespaces/<ns>/deployments/<name>). */
  readonly owner: string;
}

export const CANONICAL_NAME_LABEL = 'service.istio.io/canonical-name';
export const CANONICAL_REVISION_LABEL = 'service.istio.io/canonical-revision';

/** The node metadata keys the exchange carries (what Istio's FlatNode keeps of a node). */
const EXCHANGED_KEYS = ['NAME', 'NAMESPACE', 'OWNER', 'WORKLOAD_NAME', 'ISTIO_VERSION', 'MESH_ID', 'CLUSTER_ID', 'LABELS', 'PLATFORM_METADATA', 'APP_CONTAINERS', 'INSTANCE_IPS'];

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function labelsOf(md: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
  const l = md.LABELS;
  return l !== null && typeof l === 'object' && !Array.isArray(l) ? (l as Record<string, unknown>) : {};
}

/** Reads a node metadata Struct (the bootstrap's node.metadata, or what a peer sent). */
export function workloadFromStruct(md: Readonly<Record<string, unknown>>): WorkloadMetadata {
  const labels = labelsOf(md);
  return {
    instanceName: str(md.NAME),
    namespace: str(md.NAMESPACE),
    workloadName: str(md.WORKLOAD_NAME),
    clusterId: str(md.CLUSTER_ID),
    canonicalName: str(labels[CANONICAL_NAME_LABEL]),
    canonicalRevision: str(labels[CANONICAL_REVISION_LABEL]),
    appName: str(labels.app),
    appVersion: str(labels.version),
    owner: str(md.OWNER),
  };
}

/**
 * The Struct this proxy sends to peers: the exchanged subset of its node metadata, kept
 * as the agent wrote it (only JSON-representable values; other types are dropped).
 */
export function exchangedStruct(nodeMetadata: Readonly<Record<string, unknown>>): JsonStruct {
  const out: JsonStruct = {};
  for (const k of EXCHANGED_KEYS) {
    const v = toJsonValue(nodeMetadata[k]);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function toJsonValue(v: unknown): JsonValue | undefined {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (Array.isArray(v)) return v.map(toJsonValue).filter((x): x is JsonValue => x !== undefined);
  if (typeof v === 'object') {
    const o: JsonStruct = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const j = toJsonValue(x);
      if (j !== undefined) o[k] = j;
    }
    return o;
  }
  return undefined;
}

/** Namespace of a SPIFFE principal (`spiffe://<td>/ns/<ns>/sa/<sa>`), as Istio's stats take it. */
export function namespaceOfPrincipal(principal: string): string | undefined {
  const i = principal.indexOf('/ns/');
  if (i < 0) return undefined;
  const rest = principal.slice(i + 4);
  const end = rest.indexOf('/');
  return end < 0 ? rest : rest.slice(0, end);
}
