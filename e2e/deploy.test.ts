import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { decodeBootstrap, Diagnostics, formatProblem } from '../config/src/index.js';
import { parseMeshText } from '../controlplane/src/index.js';

// deploy/k8s: every manifest validates against the Kubernetes OpenAPI schemas
// (kubernetes-models), the pilotfish configs embedded in ConfigMaps decode, sidecars are
// native sidecars on Istio's ports, everything runs as non-root, and references resolve.
const DIR = new URL('../deploy/k8s/', import.meta.url).pathname;

interface Doc { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any }

const docs: { file: string; doc: Doc }[] = [];
for (const file of readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort()) {
  for (const d of parseAllDocuments(readFileSync(join(DIR, file), 'utf8'))) {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
    const doc = d.toJS() as Doc | null;
    if (doc) docs.push({ file, doc });
  }
}

async function modelFor(apiVersion: string, kind: string): Promise<(new (d: unknown) => { validate(): void }) | undefined> {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : [undefined, apiVersion];
  const path = group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
  try {
    return ((await import(path)) as Record<string, any>)[kind];
  } catch {
    return undefined;
  }
}

t.test('every manifest validates against its Kubernetes schema', async (t) => {
  t.ok(docs.length >= 15, `${docs.length} objects`);
  for (const { file, doc } of docs) {
    const Model = await modelFor(doc.apiVersion, doc.kind);
    t.ok(Model, `${file}: ${doc.apiVersion} ${doc.kind} is a known type`);
    if (!Model) continue;
    t.doesNotThrow(() => new Model(doc).validate(), `${file}: ${doc.kind}/${doc.metadata.name} is valid`);
  }
});

t.test('the schema check can fail', async (t) => {
  const Model = (await modelFor('apps/v1', 'Deployment'))!;
  t.throws(() => new Model({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { selector: {}, template: { spec: { containers: [{ image: 'x', ports: [{ containerPort: 'eighty' }] }] } } } }).validate());
});

const byKind = (kind: string) => docs.filter((d) => d.doc.kind === kind).map((d) => d.doc);

t.test('pilotfish configs in ConfigMaps decode', async (t) => {
  for (const cm of byKind('ConfigMap')) {
    for (const [key, text] of Object.entries(cm.data as Record<string, string>)) {
      if (key === 'mesh.yaml') {
        t.doesNotThrow(() => parseMeshText(text), `${cm.metadata.name}/${key}: mesh parses`);
        continue;
      }
      const diag = new Diagnostics();
      const b = decodeBootstrap(parseYaml(text), diag);
      t.ok(b && diag.errors.length === 0, `${cm.metadata.name}/${key} decodes ${diag.errors.map(formatProblem).join('; ')}`);
    }
  }
});

t.test('injected sidecars: native, Istio ports, probes on 15021; all pods non-root; references resolve', async (t) => {
  const configMaps = new Set(byKind('ConfigMap').map((c) => c.metadata.name));
  const serviceAccounts = new Set(byKind('ServiceAccount').map((c) => c.metadata.name));
  const deployments = byKind('Deployment');
  let sidecars = 0;
  for (const d of deployments) {
    const pod = d.spec.template.spec;
    const where = `Deployment/${d.metadata.name}`;
    t.equal(pod.securityContext?.runAsNonRoot, true, `${where}: runAsNonRoot`);
    t.same(d.spec.selector.matchLabels, Object.fromEntries(Object.entries(d.spec.selector.matchLabels).map(([k]) => [k, d.spec.template.metadata.labels[k]])), `${where}: selector matches the template`);
    for (const v of pod.volumes ?? []) if (v.configMap) t.ok(configMaps.has(v.configMap.name), `${where}: ConfigMap ${v.configMap.name} exists`);
    if (pod.serviceAccountName) t.ok(serviceAccounts.has(pod.serviceAccountName), `${where}: ServiceAccount exists`);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) t.equal(c.securityContext?.allowPrivilegeEscalation, false, `${where}/${c.name}: no privilege escalation`);
    const sc = (pod.initContainers ?? []).find((c: any) => c.name === 'pilotfish');
    if (!sc) continue;
    sidecars++;
    t.equal(sc.restartPolicy, 'Always', `${where}: pilotfish is a native sidecar`);
    t.same(sc.ports.map((p: any) => p.containerPort).sort(), [15000, 15001, 15006, 15021, 15090], `${where}: Istio's sidecar ports`);
    t.equal(sc.readinessProbe.httpGet.port, 15021);
    t.equal(sc.readinessProbe.httpGet.path, '/healthz/ready');
  }
  t.ok(sidecars >= 4, 'frontend, reviews v1/v2 and ratings have sidecars');
  for (const s of byKind('Service')) {
    const target = deployments.find((d) => Object.entries(s.spec.selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v));
    t.ok(target, `Service/${s.metadata.name} selects a Deployment`);
  }
  // the control plane's mesh names Kubernetes Services it follows
  const mesh = parseMeshText(byKind('ConfigMap').find((c) => c.metadata.name === 'pilotfish-mesh')!.data['mesh.yaml']);
  const services = new Set(byKind('Service').map((s) => s.metadata.name));
  for (const m of mesh.services) t.ok(services.has(m.name), `mesh service ${m.name} has a Kubernetes Service`);
});
