/**
 * Istio's HTTP peer metadata carriers:
 *  - `x-envoy-peer-metadata`: base64 of a serialized google.protobuf.Struct holding the
 *    workload's node metadata (NAME, NAMESPACE, WORKLOAD_NAME, CLUSTER_ID, LABELS, ...);
 *  - `x-envoy-peer-metadata-id`: the sender's node id;
 *  - W3C `baggage` with Istio's keys (k8s.namespace.name, service.name, app.name, ...).
 */
import { decodeStruct, encodeStruct } from './struct-codec.js';
import { exchangedStruct, workloadFromStruct, type WorkloadMetadata } from './workload.js';

export const PEER_METADATA_HEADER = 'x-envoy-peer-metadata';
export const PEER_ID_HEADER = 'x-envoy-peer-metadata-id';

/** Header value carrying this node's metadata. */
export function encodePeerHeader(nodeMetadata: Readonly<Record<string, unknown>>): string {
  return Buffer.from(encodeStruct(exchangedStruct(nodeMetadata))).toString('base64');
}

/** The peer's workload, or undefined when the header is not base64 of a Struct (Istio ignores it then). */
export function decodePeerHeader(value: string): WorkloadMetadata | undefined {
  // Istio decodes without requiring padding; Buffer does the same and skips characters outside the alphabet.
  if (!/^[A-Za-z0-9+/=_-]*$/.test(value)) return undefined;
  const d = decodeStruct(Buffer.from(value, 'base64'));
  return d.ok ? workloadFromStruct(d.value) : undefined;
}

const BAGGAGE_KEYS: readonly [string, keyof WorkloadMetadata][] = [
  ['k8s.namespace.name', 'namespace'],
  ['k8s.cluster.name', 'clusterId'],
  ['service.name', 'canonicalName'],
  ['service.version', 'canonicalRevision'],
  ['app.name', 'appName'],
  ['app.version', 'appVersion'],
  ['k8s.instance.name', 'instanceName'],
];
const WORKLOAD_KEYS = ['k8s.deployment.name', 'k8s.pod.name', 'k8s.job.name', 'k8s.cronjob.name'];

/** Istio's baggage for this workload (WorkloadMetadataObject::baggage). */
export function toBaggage(w: WorkloadMetadata): string {
  const parts: string[] = [];
  if (w.workloadName !== '') parts.push(`k8s.${w.owner.includes('/deployments/') || w.owner === '' ? 'deployment' : 'pod'}.name=${w.workloadName}`);
  for (const [k, f] of BAGGAGE_KEYS) if (w[f] !== '') parts.push(`${k}=${w[f]}`);
  return parts.join(',');
}

export function parseBaggage(value: string): WorkloadMetadata | undefined {
  const m: Record<string, string> = {};
  let workload = '';
  for (const prop of value.split(',')) {
    const eq = prop.indexOf('=');
    if (eq < 0) continue;
    const k = prop.slice(0, eq).trim();
    const v = prop.slice(eq + 1).split(';')[0]!.trim();
    if (WORKLOAD_KEYS.includes(k)) workload = v;
    else m[k] = v;
  }
  const get = (k: string): string => m[k] ?? '';
  if (workload === '' && Object.keys(m).length === 0) return undefined;
  return {
    instanceName: get('k8s.instance.name'), namespace: get('k8s.namespace.name'), workloadName: workload,
    clusterId: get('k8s.cluster.name'), canonicalName: get('service.name'), canonicalRevision: get('service.version'),
    appName: get('app.name'), appVersion: get('app.version'), owner: '',
  };
}
