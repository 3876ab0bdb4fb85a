/**
 * pilotfish in Envoy's place under Istio: the bootstrap pilot-agent renders from Istio's
 * template, ADS from a fake istiod on the agent's Unix socket (`./etc/istio/proxy/XDS`),
 * secrets on the agent's SDS socket, and the configuration istiod generates for two
 * Bookinfo sidecars (productpage-v1 and reviews-v1, whose inbound side carries an
 * AuthorizationPolicy). The target is Envoy's: every resource ACKed, zero NACKs.
 *
 * Each NACK is reported (type URL, resource, reason, one line each). Expectations that
 * fail today are marked `todo` with the refusals as the reason, so the suite stays green
 * while the list stays visible; they become real assertions as the work lands.
 * The proxy runs in a network namespace of its own (it binds Istio's real ports: 15000,
 * 15001, 15006, 15021, 15090), its working directory a temporary one holding the sockets.
 */
import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { TYPE_URLS } from '../xds-client/src/index.js';
import { istioBootstrap, nodeId } from './fixtures/istio/bootstrap.js';
import { FakeIstiod } from './fixtures/istio/fake-istiod.js';
import { workload } from './fixtures/istio/mesh.js';
import { meshRoot, sidecarSecrets } from './fixtures/istio/secrets.js';
import { sidecarConfig } from './fixtures/istio/sidecar.js';
import { groupFindings, inventory } from './fixtures/istio/inventory.js';
import { compact, removeAt, splitRefusal } from './fixtures/istio/peel.js';
import type { Json } from './fixtures/istio/shapes.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'needs root: the proxy binds Istio ports in a network namespace of its own';

// The CLI from source (the compiled one may be stale mid-work): wherever main() lives now.
const mainTs = ['cli/src/main.ts', 'proxy/src/main.ts'].map((p) => path.join(root, p)).find((p) => existsSync(p));
const tsxLoader = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
const script = `import(${JSON.stringify(mainTs ? pathToFileURL(mainTs).href : '')}).then((m) => m.main(process.argv.slice(1))).then((c) => process.exit(c ?? 0))`;

const TYPES = [TYPE_URLS.cluster, TYPE_URLS.endpoint, TYPE_URLS.listener, TYPE_URLS.route] as const;
const short = (url: string): string => url.slice(url.lastIndexOf('.') + 1);

interface Refusal {
  readonly typeUrl: string;
  readonly resource: string;
  readonly reason: string;
}

async function netns(name: string): Promise<() => void> {
  execFileSync('ip', ['netns', 'add', name]);
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return () => {
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe' });
    } catch {
      /* already gone */
    }
  };
}

function startProxy(ns: string, cwd: string, config: string): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const args = ['netns', 'exec', ns, process.execPath, '--import', tsxLoader, '-e', script, '--', 'proxy', '--config', config, '--log-level', 'warning'];
  const child = spawn('ip', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { child, out: () => out, exited };
}

/** Resolves when every type has an outcome for the current version (ACK or NACK), or after `ms`. */
function settle(f: FakeIstiod, node: string, since: number, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    const seen = (): boolean => TYPES.every((u) => f.ads.ackedVersion(node, u) >= f.ads.version(u) || f.nacks.slice(since).some((n) => n.typeUrl === u));
    const check = (): void => {
      if (seen()) setTimeout(done, 500); // late pushes (RDS/EDS after LDS/CDS) get their chance
    };
    function done(): void {
      clearTimeout(timer);
      f.ads.off('ack', check);
      f.ads.off('nack', check);
      resolve();
    }
    f.ads.on('ack', check);
    f.ads.on('nack', check);
  });
}

t.test('pilotfish\'s decoders on istiod\'s sidecar configuration: the full list, every resource', async (t) => {
  for (const name of ['productpage-v1', 'reviews-v1']) {
    const findings = inventory(sidecarConfig(workload(name)));
    const errors = findings.filter((f) => f.severity === 'error');
    t.comment([`== ${name}: ${errors.length} refusal(s), ${findings.length - errors.length} ignored field(s)`, ...groupFindings(findings)].join('\n'));
    const refused = [...new Set(errors.map((e) => e.message))];
    t.equal(errors.length, 0, `${name}: no resource refused by the decoders`, { todo: errors.length > 0 ? refused.join(' | ') : false });
  }
});

// The SotW cases also put the secrets on ADS (istiod does not) to see past that gap; the
// delta case is faithful: secrets only on the agent's SDS socket.
const cases = [
  { workload: 'productpage-v1', api: 'GRPC' as const, secretsOnAds: true },
  { workload: 'reviews-v1', api: 'GRPC' as const, secretsOnAds: true },
  { workload: 'reviews-v1', api: 'DELTA_GRPC' as const, secretsOnAds: false },
];

t.setTimeout(600_000);

t.test('pilotfish under a fake istiod and pilot-agent: istiod\'s sidecar configuration is ACKed', { skip: skip || (mainTs ? false : 'pilotfish CLI source not found') }, async (t) => {
  const ca = await meshRoot();
  for (const [i, c] of cases.entries()) {
    await t.test(`${c.workload} (${c.api}${c.secretsOnAds ? ', secrets also on ADS' : ''})`, async (t) => {
      const w = workload(c.workload);
      const dir = mkdtempSync(path.join(tmpdir(), 'pf-istio-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      const delNs = await netns(`pfistio${process.pid}x${i}`);
      t.teardown(delNs);

      const config = sidecarConfig(w);
      const f = await FakeIstiod.start({ cwd: dir, config, secrets: await sidecarSecrets(ca, w), secretsOnAds: c.secretsOnAds });
      t.teardown(() => f.close());
      mkdirSync(path.join(dir, 'etc/istio/proxy'), { recursive: true });
      const bootstrapPath = 'etc/istio/proxy/envoy-rev.json';
      writeFileSync(path.join(dir, bootstrapPath), JSON.stringify(istioBootstrap(w, { xdsType: c.api }), null, 2));

      const proxy = startProxy(`pfistio${process.pid}x${i}`, dir, bootstrapPath);
      t.teardown(async () => {
        if (proxy.child.exitCode === null && proxy.child.pid !== undefined) {
          try {
            process.kill(-proxy.child.pid, 'SIGTERM');
          } catch {
            /* gone */
          }
          const timer = setTimeout(() => {
            try {
              process.kill(-proxy.child.pid!, 'SIGKILL');
            } catch {
              /* gone */
            }
          }, 3000);
          await proxy.exited;
          clearTimeout(timer);
        }
      });

      const node = nodeId(w);
      const connected = await Promise.race([
        new Promise<boolean>((r) => f.ads.once('connect', () => r(true))),
        proxy.exited.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(false), 30_000)),
      ]);
      t.ok(connected, 'the proxy connects to istiod through the agent\'s XDS Unix socket', { output: connected ? undefined : proxy.out().slice(-2000) });
      if (!connected) return;

      // Round 0 is istiod's configuration as sent. Later rounds (SotW only, where the
      // response order maps `resources[i]` to a name) push it again without what was
      // refused, to show what the first refusals hid.
      const rounds = c.api === 'GRPC' ? 12 : 1;
      let cfg = structuredClone(config) as unknown as Record<string, Record<string, Json>>;
      const found: (Refusal & { round: number })[] = [];
      const acked = new Map<string, boolean>();
      for (let round = 0; round < rounds; round++) {
        const since = f.nacks.length;
        if (round > 0) for (const [u, rs] of typeEntries(cfg)) f.ads.setResources(u, rs);
        await settle(f, node, since, 6_000);
        if (round === 0) for (const u of TYPES) acked.set(u, f.ads.ackedVersion(node, u) >= f.ads.version(u));
        const fresh = f.nacks.slice(since);
        if (fresh.length === 0) break;
        let removed = 0;
        for (const n of fresh) {
          const names = Object.keys(typeRecord(cfg, n.typeUrl));
          for (const part of n.error.split(/; (?=resources\[)/)) {
            const r = splitRefusal(part.replace(/; \.\.\. \d+ more$/, ''));
            if (r === undefined) {
              // Refused when the proxy builds the listener (after decoding), reported on
              // whichever update triggered the build: `listener "X": listener "X".path: reason; ...`.
              for (const m of part.matchAll(/listener "([^"]+)"\.([^:;]+): ([^;]+)/g)) {
                found.push({ typeUrl: TYPE_URLS.listener, resource: `${m[1]} ${m[2]} (at build, NACKed on ${short(n.typeUrl)})`, reason: m[3]!, round });
                const l = typeRecord(cfg, TYPE_URLS.listener)[m[1]!];
                if (l !== undefined && removeAt(l, m[2]!)) removed++;
              }
              if (!/listener "[^"]+"\./.test(part)) found.push({ typeUrl: n.typeUrl, resource: '?', reason: part, round });
              continue;
            }
            const name = names[r.index] ?? `resources[${r.index}]`;
            found.push({ typeUrl: n.typeUrl, resource: `${name}${r.path ? ` ${r.path}` : ''}`, reason: r.reason, round });
            const res = typeRecord(cfg, n.typeUrl)[name];
            if (res !== undefined && removeAt(res, r.path)) removed++;
          }
        }
        if (removed === 0) break;
        cfg = compact(cfg) as Record<string, Record<string, Json>>;
      }

      const afterPeel = TYPES.map((u) => `${short(u)} ${f.ads.ackedVersion(node, u) >= f.ads.version(u) ? 'ACKed' : 'not ACKed'}`).join(', ');
      const unique = [...new Map(found.map((r) => [`${r.typeUrl} ${r.resource} ${r.reason}`, r])).values()];
      const warnings = proxy
        .out()
        .split('\n')
        .filter((l) => /warn|ignored|not supported|not used/i.test(l) && !/rejected [a-z]+ update/.test(l))
        .map((l) => l.trim());
      const counts = TYPES.map((u) => `${short(u)}: ${Object.keys(typeRecord(cfg, u)).length} sent, ${acked.get(u) ? 'ACKed' : 'not ACKed'}`);
      t.comment(
        [
          `== ${c.workload} (${c.api}): ${f.nacks.length} NACK(s), ${unique.length} distinct refusal(s); as sent: ${counts.join('; ')}`,
          ...unique.map((r) => `NACK[round ${r.round}] ${short(r.typeUrl)} ${r.resource}: ${r.reason}`),
          ...[...new Set(warnings)].map((l) => `WARN ${l}`),
          `with every refused element removed: ${afterPeel}`,
          `agent SDS socket streams: ${f.sdsConnections()}`,
        ].join('\n'),
      );

      // The target. Each expectation that does not hold yet is a todo naming why.
      for (const u of TYPES) {
        const mine = unique.filter((r) => r.typeUrl === u);
        const ok = acked.get(u) === true && mine.length === 0;
        const todo = ok ? false : mine.length > 0 ? `${mine.length} refusal(s), e.g. ${mine.slice(0, 3).map((r) => `${r.resource}: ${r.reason}`).join(' | ')}` : 'not ACKed as sent (not requested while another type is refused)';
        t.ok(ok, `${short(u)}: every resource ACKed, no NACK`, { todo });
      }
      const sds = f.sdsConnections() > 0;
      t.ok(sds, 'the workload certificate is fetched from pilot-agent\'s SDS socket (the sds-grpc cluster), as Envoy does', {
        todo: sds ? false : 'no stream on the agent\'s SDS socket: pilotfish asks for SDS secrets on the ADS stream, where istiod has none',
      });
      t.equal(proxy.child.exitCode, null, 'the proxy is still running', { output: proxy.child.exitCode === null ? undefined : proxy.out().slice(-2000) });
    });
  }
});

const FIELD: Record<string, string> = { [TYPE_URLS.cluster]: 'clusters', [TYPE_URLS.endpoint]: 'endpoints', [TYPE_URLS.listener]: 'listeners', [TYPE_URLS.route]: 'routes' };

function typeRecord(c: Record<string, Record<string, Json>>, u: string): Record<string, Json> {
  return c[FIELD[u] ?? ''] ?? {};
}

function typeEntries(c: Record<string, Record<string, Json>>): [string, Record<string, Json>][] {
  return TYPES.map((u) => [u, typeRecord(c, u)]);
}
