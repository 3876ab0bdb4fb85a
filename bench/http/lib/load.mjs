// Load generators (wrk, h2load), pinned to the load core, always bounded in time.
import { readFileSync, rmSync } from 'node:fs';
import { percentileSorted } from './stats.mjs';
import { ownCpuSeconds } from './proc.mjs';
import { pinned, spawnWithPriority } from './procs.mjs';

/** Run a command to completion; kill it if it overruns `timeoutMs`. */
export function runCommand(cmd, args, timeoutMs, env) {
  return new Promise((resolve) => {
    const child = spawnWithPriority(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
    let out = '', err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    // The load generator's own CPU time, sampled while it runs (the last <=100 ms are
    // lost): used to tell background load on the machine from our own.
    let cpu = 0;
    const sample = () => { const c = ownCpuSeconds(child.pid); if (c !== null) cpu = c; };
    const sampler = setInterval(sample, 100);
    child.on('exit', sample);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearInterval(sampler);
      resolve({ code, signal, out, err, cpu });
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      clearInterval(sampler);
      resolve({ code: -1, signal: null, out, err: String(e), cpu });
    });
  });
}

function toMs(v, unit) {
  const n = Number(v);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : unit === 'm' ? n * 60000 : n;
}

export function parseWrk(out) {
  const num = (re) => { const m = out.match(re); return m ? Number(m[1]) : 0; };
  const requests = num(/(\d+) requests in/);
  const rps = num(/Requests\/sec:\s+([\d.]+)/);
  const non2xx = num(/Non-2xx or 3xx responses:\s+(\d+)/);
  const se = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const socketErrors = se ? se.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const lat = {};
  for (const m of out.matchAll(/^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$/gm)) lat[m[1]] = toMs(m[2], m[3]);
  return { requests, rps, errors: non2xx + socketErrors, p50: lat['50'] ?? null, p99: lat['99'] ?? null };
}

export function parseH2load(out) {
  const m = out.match(/requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/);
  const fin = out.match(/finished in ([\d.]+)(s|ms), ([\d.]+) req\/s/);
  const codes = out.match(/status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/);
  const succeeded = m ? Number(m[4]) : 0;
  const errors = m ? Number(m[5]) + Number(m[6]) + Number(m[7]) : 1;
  const non2xx = codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : 0;
  const seconds = fin ? (fin[2] === 'ms' ? Number(fin[1]) / 1000 : Number(fin[1])) : 0;
  // Over TLS h2load reports what it negotiated; an https run that did not get h2 measured something else.
  const tls = out.match(/TLS Protocol: (\S+)/), cipher = out.match(/Cipher: (\S+)/), alpn = out.match(/Application protocol: (\S+)/);
  return {
    requests: succeeded, rps: fin ? Number(fin[3]) : 0, seconds, errors: errors + non2xx,
    ...(tls ? { tlsProtocol: tls[1], cipher: cipher?.[1], alpn: alpn?.[1] } : {}),
  };
}

/**
 * HTTP/1.1 keep-alive throughput: wrk, 1 thread, closed loop. An https URL with `env`
 * from mtls.mjs's loadgenEnv: over TLS with the client certificate (no ALPN: HTTP/1.1).
 */
export async function wrk({ url, connections, seconds, core, env, close = false }) {
  // close: `Connection: close` on every request, so each one opens (and handshakes) a new connection.
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...(close ? ['-H', 'Connection: close'] : []), url];
  const r = await runCommand(...pinned(core, 'wrk', args), (seconds + 20) * 1000, env);
  if (r.code !== 0) throw new Error(`wrk failed (${r.code ?? r.signal}): ${r.err || r.out}`);
  return { ...parseWrk(r.out), loadgenCpuSeconds: r.cpu };
}

/**
 * h2c (prior knowledge) throughput: h2load, 1 thread, `clients` connections x `streams`
 * concurrent streams. An https URL (with `env` for the client certificate): h2 by ALPN.
 */
export async function h2loadThroughput({ url, clients, streams, seconds, core, env }) {
  const args = ['-t1', `-c${clients}`, `-m${streams}`, `-D${seconds}`, url];
  const r = await runCommand(...pinned(core, 'h2load', args), (seconds + 20) * 1000, env);
  if (r.code !== 0) throw new Error(`h2load failed (${r.code ?? r.signal}): ${r.err || r.out}`);
  const parsed = parseH2load(r.out);
  if (url.startsWith('https:') && (parsed.tlsProtocol !== 'TLSv1.3' || parsed.alpn !== 'h2')) {
    throw new Error(`h2load over TLS negotiated ${parsed.tlsProtocol ?? 'nothing'} / ALPN ${parsed.alpn ?? 'none'}, not TLSv1.3 / h2`);
  }
  return { ...parsed, loadgenCpuSeconds: r.cpu };
}

/**
 * Fixed request rate: h2load --rps per client, `clients` connections, one request in
 * flight per connection. Latency percentiles come from the per-request log
 * (h2load prints only mean/sd); the first `skipSeconds` of the log are dropped.
 */
export async function h2loadRate({ url, h1, rate, clients, seconds, core, logFile, skipSeconds = 0.5 }) {
  const perClient = Math.max(1, Math.round(rate / clients));
  // h2load's --rps timer fires at most every 10 ms per client, and clients that connect
  // together fire together: 20 clients started at once send bursts of 20 requests
  // every 10 ms, which measures queueing in the burst, not the proxy hop. Opening one
  // connection per ms (-r1 --rate-period=1ms; 1 ms is the finest period h2load accepts)
  // spreads the clients' phases, so arrivals come ~1 ms apart in groups of
  // ceil(clients / 10). -r excludes -D, so the run is bounded by -n instead.
  const args = ['-t1', `-c${clients}`, '-m1', `--rps=${perClient}`,
    '-r1', '--rate-period=1ms', `-n${perClient * clients * seconds}`, `--log-file=${logFile}`];
  if (h1) args.push('--h1');
  args.push(url);
  const r = await runCommand(...pinned(core, 'h2load', args), (seconds + 20) * 1000);
  if (r.code !== 0) throw new Error(`h2load --rps failed (${r.code ?? r.signal}): ${r.err || r.out}`);
  const summary = parseH2load(r.out);
  const rows = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => l.split('\t').map(Number));
  rmSync(logFile, { force: true });
  const t0 = rows.reduce((m, x) => Math.min(m, x[0]), Infinity);
  const lat = rows.filter((x) => x[0] - t0 >= skipSeconds * 1e6 && x[1] >= 200 && x[1] < 400)
    .map((x) => x[2] / 1000).sort((a, b) => a - b);
  return {
    ...summary,
    loadgenCpuSeconds: r.cpu,
    targetRps: perClient * clients,
    p50: percentileSorted(lat, 50),
    p90: percentileSorted(lat, 90),
    p99: percentileSorted(lat, 99),
    samples: lat.length,
  };
}
