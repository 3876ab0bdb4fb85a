/**
 * Filter chain benchmark: per-request cost of the chain itself, in-process (no sockets).
 *   node --import tsx bench/filters.ts [--rounds 5] [--ms 1500]
 *
 * Scenarios (rounds alternate scenarios; medians reported):
 *   empty        router only (the proxy skips the phases then; measured anyway)
 *   builtins5    rbac (ALLOW, 2 policies) + header_mutation + local_ratelimit + cors (policy on route) + fault (0%)
 *   user1-seq    one hot-loaded user filter (worker isolation), one request at a time: latency
 *   user1-c64    the same with 64 requests in flight: throughput per request
 * Each request allocates its views and StreamInfo and runs decodeHeaders, encodeHeaders
 * and streamComplete, as the proxy does. "cpu µs/req" is the whole process (all threads,
 * so it includes the user filter's worker).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { Diagnostics } from '../config/src/index.js';
import type { HttpFilterConfig } from '../config/src/index.js';
import {
  buildHttpFilterChain, decodePerFilterConfig, sha256Hex, UserFilterManager,
  type HttpFilterChain, type StreamInfo,
} from '../filters/src/index.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ROUNDS = opt('rounds', 5);
const MS = opt('ms', 1500);

const f = (name: string, type: string, config: Record<string, unknown>): HttpFilterConfig =>
  ({ name, typeUrl: `type.googleapis.com/${type}`, config, disabled: false, isOptional: false });
const ROUTER = f('envoy.filters.http.router', 'envoy.extensions.filters.http.router.v3.Router', {});
const pct = (n: number) => ({ default_value: { numerator: n, denominator: 'HUNDRED' } });

const diag = new Diagnostics();
const mgr = new UserFilterManager();

const builtins = [
  f('rbac', 'envoy.extensions.filters.http.rbac.v3.RBAC', {
    rules: {
      action: 'ALLOW',
      policies: {
        'admins': { permissions: [{ url_path: { path: { prefix: '/admin' } } }], principals: [{ authenticated: { principal_name: { exact: 'spiffe://mesh/ns/ops/sa/admin' } } }] },
        'readers': {
          permissions: [{ and_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }, { url_path: { path: { prefix: '/api/' } } }] } }],
          principals: [{ authenticated: { principal_name: { prefix: 'spiffe://mesh/ns/default/' } } }],
        },
      },
    },
  }),
  f('hm', 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation', {
    mutations: {
      request_mutations: [{ append: { header: { key: 'x-mesh', value: 'pilotfish' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' } }, { remove: 'x-internal' }],
      response_mutations: [{ append: { header: { key: 'x-served-by', value: 'pilotfish' } } }],
    },
  }),
  f('lrl', 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit', {
    stat_prefix: 'lrl', token_bucket: { max_tokens: 1_000_000_000, tokens_per_fill: 1_000_000_000, fill_interval: '1s' },
    filter_enabled: pct(100), filter_enforced: pct(100),
  }),
  f('cors', 'envoy.extensions.filters.http.cors.v3.Cors', {}),
  f('fault', 'envoy.extensions.filters.http.fault.v3.HTTPFault', { abort: { http_status: 503, percentage: { numerator: 0 } } }),
  ROUTER,
];
const corsPolicy = decodePerFilterConfig('cors', {
  name: 'cors', typeUrl: 'envoy.extensions.filters.http.cors.v3.CorsPolicy',
  config: { allow_origin_string_match: [{ exact: 'https://app.example.com' }], allow_methods: 'GET' },
}, diag, 'vh');

const userSource = `
exports.onRequest = (req, ctx) => {
  if (req.headers['x-block'] === '1') return { status: 403 };
  req.headers['x-tenant'] = (req.headers['x-user'] || 'anon').split('@')[1] || 'none';
};
exports.onResponse = (res) => { res.headers['x-user-filter'] = '1'; };
`;
const userCfg = {
  inline_source: userSource, sha256: sha256Hex(userSource), version: '1.0.0', api_version_range: '^1.0.0',
  time_budget_ms: 1000, rollback_after_failures: 0,
};

const chains: Record<string, HttpFilterChain> = {
  empty: buildHttpFilterChain([ROUTER], diag, 'empty')!,
  builtins5: buildHttpFilterChain(builtins, diag, 'b5')!,
  user1: buildHttpFilterChain([{ name: 'user', typeUrl: 'pilotfish.filters.http.module', config: userCfg, disabled: false, isOptional: false }, ROUTER], diag, 'u', { userFilters: mgr })!,
};
if (diag.errors.length > 0) throw new Error(JSON.stringify(diag.errors));

let seq = 0;
function oneRequest(chain: HttpFilterChain, perFilterConfig: Record<string, unknown> | undefined): void | Promise<void> {
  const info: StreamInfo = {
    requestId: String(++seq), startTime: 0, downstreamAddress: '10.0.0.7', downstreamLocalPort: 15006,
    peerIdentity: 'spiffe://mesh/ns/default/sa/frontend', routeName: 'r', virtualHostName: 'vh', clusterName: 'c',
    perFilterConfig, metadata: new Map(),
  };
  const req = {
    method: 'GET', path: '/api/users/42', authority: 'svc.default', scheme: 'http' as const,
    headers: { 'user-agent': 'bench', accept: '*/*', origin: 'https://app.example.com', 'x-user': 'ann@acme' } as Record<string, string>,
  };
  const r = chain.decodeHeaders(req, info);
  const after = (): void | Promise<void> => {
    const res = { status: 200, headers: { 'content-type': 'application/json', 'content-length': '64' } as Record<string, string> };
    const e = chain.encodeHeaders(res, info);
    if (e instanceof Promise) return e.then(() => chain.streamComplete(info));
    chain.streamComplete(info);
  };
  if (r instanceof Promise) return r.then(after);
  return after();
}

interface Sample { readonly wallUs: number; readonly cpuUs: number; readonly n: number }

async function measure(name: string): Promise<Sample> {
  const chain = name.startsWith('user1') ? chains.user1! : chains[name]!;
  const pfc = name === 'builtins5' ? { cors: corsPolicy } : undefined;
  const inFlight = name === 'user1-c64' ? 64 : 1;
  const async = name.startsWith('user1');
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + MS;
  let n = 0;
  if (!async) {
    // Sync chains: batches between clock reads keep timer overhead out of the figure.
    while (performance.now() < deadline) {
      for (let i = 0; i < 1000; i++) oneRequest(chain, pfc);
      n += 1000;
    }
  } else {
    const lane = async (): Promise<void> => {
      while (performance.now() < deadline) {
        await oneRequest(chain, pfc);
        n++;
      }
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { wallUs: (wall * 1000) / n, cpuUs: (cpu.user + cpu.system) / n, n };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

async function main(): Promise<void> {
  const problems = await chains.user1!.ready;
  if (problems.length > 0) throw new Error(JSON.stringify(problems));
  const scenarios = ['empty', 'builtins5', 'user1-seq', 'user1-c64'];
  // Warm-up (JIT) per scenario, not measured.
  for (const s of scenarios) await measure(s);
  const runs: Record<string, Sample[]> = Object.fromEntries(scenarios.map((s) => [s, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const s of scenarios) runs[s]!.push(await measure(s));
    process.stderr.write(`round ${r + 1}/${ROUNDS}\n`);
  }
  const summary = scenarios.map((s) => ({
    scenario: s,
    wallUsPerReq: median(runs[s]!.map((x) => x.wallUs)),
    cpuUsPerReq: median(runs[s]!.map((x) => x.cpuUs)),
    requests: runs[s]!.reduce((a, x) => a + x.n, 0),
  }));
  const conditions = {
    node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, loadavg: os.loadavg(),
    rounds: ROUNDS, msPerMeasurement: MS, date: new Date().toISOString(),
  };
  console.log(`# filter chain cost (${conditions.node}, ${conditions.cpus}× ${conditions.cpuModel}, loadavg ${conditions.loadavg.map((x) => x.toFixed(2)).join(' ')})\n`);
  console.log('| scenario | wall µs/req | process CPU µs/req |');
  console.log('|---|---:|---:|');
  for (const s of summary) console.log(`| ${s.scenario} | ${s.wallUsPerReq.toFixed(2)} | ${s.cpuUsPerReq.toFixed(2)} |`);
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/filters-${conditions.date.replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, JSON.stringify({ conditions, summary, runs }, null, 2));
  process.stderr.write(`results: ${file}\n`);
  mgr.close();
}

void main();
