/**
 * The demo's mesh file: services with versions (replicas, traffic weight) and the
 * generator's rate. The demo turns it into running instances and a control-plane mesh.
 */
import { parse as parseYaml } from 'yaml';

export interface VersionSpec {
  readonly replicas: number;
  readonly weight: number;
}

export interface DemoSpec {
  readonly rps: number;
  /** service -> version -> spec, in file order. */
  readonly services: ReadonlyMap<string, ReadonlyMap<string, VersionSpec>>;
}

export class SpecError extends Error {}

type Obj = Record<string, unknown>;
const NAME = /^[a-z][a-z0-9-]{0,30}$/;

function obj(v: unknown, path: string): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new SpecError(`${path}: expected a mapping`);
  return v as Obj;
}

function int(v: unknown, path: string, min: number, max: number, fallback: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new SpecError(`${path}: must be an integer ${min}..${max}`);
  return v;
}

function only(o: Obj, path: string, keys: readonly string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new SpecError(`${path}.${k}: unknown field (expected one of ${keys.join(', ')})`);
}

export function parseSpec(text: string): DemoSpec {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new SpecError(`not YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const root = obj(raw, '(root)');
  only(root, '(root)', ['traffic', 'services']);
  const traffic = root.traffic === undefined ? {} : obj(root.traffic, 'traffic');
  only(traffic, 'traffic', ['rps']);
  const rps = int(traffic.rps, 'traffic.rps', 0, 500, 25);
  const services = new Map<string, Map<string, VersionSpec>>();
  const svcs = obj(root.services, 'services');
  let instances = 0;
  for (const [name, sv] of Object.entries(svcs)) {
    const p = `services.${name}`;
    if (!NAME.test(name)) throw new SpecError(`${p}: service names are lower-case letters, digits and dashes`);
    const so = obj(sv, p);
    only(so, p, ['versions']);
    const versions = new Map<string, VersionSpec>();
    for (const [v, vv] of Object.entries(obj(so.versions, `${p}.versions`))) {
      const vp = `${p}.versions.${v}`;
      if (!NAME.test(v)) throw new SpecError(`${vp}: version names are lower-case letters, digits and dashes`);
      const vo = obj(vv, vp);
      only(vo, vp, ['replicas', 'weight']);
      const spec = { replicas: int(vo.replicas, `${vp}.replicas`, 0, 5, 1), weight: int(vo.weight, `${vp}.weight`, 0, 10_000, 1) };
      instances += spec.replicas;
      versions.set(v, spec);
    }
    if (versions.size === 0) throw new SpecError(`${p}.versions: name at least one version`);
    if ([...versions.values()].every((x) => x.weight === 0)) throw new SpecError(`${p}.versions: at least one version needs a weight above 0`);
    services.set(name, versions);
  }
  if (!services.has('reviews') && services.size === 0) throw new SpecError('services: name at least one service');
  if (instances > 12) throw new SpecError(`services: ${instances} instances in all; the demo runs at most 12 on one machine`);
  return { rps, services };
}
