// Markdown rendering of a run's summary.

const f = (v, d = 1) => (v == null || !Number.isFinite(v) ? '—' : v.toFixed(d));
const int = (v) => (v == null ? '—' : Math.round(v).toLocaleString('en-US'));
const ratio = (a, b) => (a == null || b == null || !b ? '—' : `${(a / b).toFixed(2)}×`);
const plus = (a, b) => (a == null || b == null ? '—' : `${a - b >= 0 ? '+' : ''}${(a - b).toFixed(3)}`);

const bg = (s) => (s.maxBackgroundCores == null ? '—' : `${f(s.backgroundCores * 100, 0)}% (${f(s.maxBackgroundCores * 100, 0)}%)${s.maxBackgroundCores > 0.1 ? ' ⚠' : ''}`);

/** Issue 13's targets ("cost per sidecar"): ratios to nginx measured in the same run, and absolute memory. */
const GOALS = { h1VsNginx: 2.0, h2cVsNginx: 2.5, mtlsH1VsNginx: 2.0, addedP50VsNginx: 0.1, idleRssMB: 45, peakRssMB: 70 };

function throughputTable(title, rows) {
  const n = rows.nginx, d = rows.direct;
  const lines = [
    `### ${title}`, '',
    '| target | req/s | vs nginx | vs direct | proxy CPU µs/req | of which kernel | vs nginx | proxy core busy | p50 ms | p99 ms | errors | background load |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [name, s] of Object.entries(rows)) {
    lines.push(`| ${name} | ${int(s.rps)} | ${ratio(s.rps, n?.rps)} | ${ratio(s.rps, d?.rps)} | ${f(s.cpuUsPerReq)} | ${f(s.sysUsPerReq)} | ${ratio(s.cpuUsPerReq, n?.cpuUsPerReq)} | ${s.proxyCoreBusy == null ? '—' : `${f(s.proxyCoreBusy * 100, 0)}%`} | ${f(s.p50, 2)} | ${f(s.p99, 2)} | ${s.errors} | ${bg(s)} |`);
  }
  return lines.join('\n') + '\n';
}

function rateTable(title, rows) {
  const d = rows.direct, n = rows.nginx;
  const lines = [
    `### ${title}`, '',
    '| target | achieved req/s | p50 ms | p99 ms | added p50 vs direct | added p99 vs direct | added p50 vs nginx | proxy CPU µs/req | errors | background load |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [name, s] of Object.entries(rows)) {
    lines.push(`| ${name} | ${int(s.rps)} | ${f(s.p50, 3)} | ${f(s.p99, 3)} | ${name === 'direct' ? '—' : plus(s.p50, d?.p50)} | ${name === 'direct' ? '—' : plus(s.p99, d?.p99)} | ${name === 'direct' || name === 'nginx' ? '—' : plus(s.p50, n?.p50)} | ${f(s.cpuUsPerReq)} | ${s.errors} | ${bg(s)} |`);
  }
  return lines.join('\n') + '\n';
}

export function renderReport(r) {
  const c = r.conditions;
  const out = [];
  out.push(`## HTTP proxy benchmark — ${r.started}`, '');
  out.push(`Conditions: ${c.cores} cores (${c.cpu}), ${c.memGiB} GiB; proxy pinned to core ${c.proxyCore}, load generator + origin on core ${c.loadCore}. ` +
    `Origin: ${c.origin}. Medians over ${c.rounds} alternating round(s). ` +
    `h1: wrk -t1 -c${c.connections}, ${c.duration} s; h2c: h2load -t1 -c${c.h2Clients} -m${c.h2Streams}, ${c.duration} s; ` +
    `fixed rate: h2load --rps, ${c.rate} req/s over ${c.rateClients} connections (1 in flight each), ${c.rateDuration} s, first 0.5 s dropped. ` +
    `Niceness ${c.nice}; each measurement waited up to ${c.waitQuiet} s for background load < 15% of a core. ` +
    `${Object.entries(c.versions).map(([k, v]) => `${k} ${v}`).join(', ')}.`, '');
  out.push('Background load = CPU used on the machine by anything other than the target, origin, load generator and harness, ' +
    'in % of one core: median (max) over rounds; ⚠ = some round saw more than 10%, treat that row\'s req/s and latency with care.', '');
  const titles = {
    h1: 'HTTP/1.1 keep-alive throughput (wrk, closed loop; latency is at saturation)',
    h2c: 'h2c throughput (h2load, prior knowledge; latency not measured)',
    'rate-h1': `HTTP/1.1 at a fixed ${c.rate} req/s (h2load --h1 --rps)`,
    'rate-h2c': `h2c at a fixed ${c.rate} req/s (h2load --rps)`,
    'mtls-h1': `HTTP/1.1 over mTLS (TLS 1.3, client certificate), keep-alive throughput (wrk -c${c.connections}; latency is at saturation)`,
    'mtls-h2': `h2 over mTLS (TLS 1.3, client certificate, ALPN), keep-alive throughput (h2load -c${c.h2Clients} -m${c.h2Streams})`,
    'mtls-conn': `A new mTLS connection per request (wrk -c${c.connClients}, Connection: close; full TLS 1.3 handshake with client certificate each time): µs/request = per connection`,
  };
  for (const [s, rows] of Object.entries(r.summary)) {
    if (!Object.keys(rows).length) continue;
    out.push(s.startsWith('rate') ? rateTable(titles[s], rows) : throughputTable(titles[s], rows));
  }
  if (Object.keys(r.memory).length) {
    out.push('### Memory (all processes of the target, summed)', '', '| target | idle RSS at ready MB | idle RSS settled MB | RSS at end MB | peak RSS (VmHWM) MB |', '|---|---:|---:|---:|---:|');
    for (const [n, m] of Object.entries(r.memory)) out.push(`| ${n} | ${f(m.idleRssMB)} | ${f(m.settledIdleRssMB)} | ${f(m.rssMB)} | ${f(m.hwmMB)} |`);
    out.push('');
  }
  const p = (s) => r.summary[s]?.pilotfish;
  if (r.conditions.targets.includes('pilotfish')) {
    // Ratios and added latency against nginx measured in the same run (the issue's targets).
    const vsNginx = (s) => (p(s)?.cpuUsPerReq != null && r.summary[s]?.nginx?.cpuUsPerReq ? p(s).cpuUsPerReq / r.summary[s].nginx.cpuUsPerReq : null);
    const addedP50 = (s) => (p(s)?.p50 != null && r.summary[s]?.nginx?.p50 != null ? p(s).p50 - r.summary[s].nginx.p50 : null);
    const chk = (v, goal) => (v == null ? 'not measured' : v <= goal ? 'met' : 'MISSED');
    const row = (label, goal, v, unit, d = 2) => out.push(`| ${label} | ≤ ${goal}${unit} | ${v == null ? '—' : `${f(v, d)}${unit}`} | ${chk(v, goal)} |`);
    out.push('### pilotfish against its targets (issue 13)', '', '| goal | target | measured | |', '|---|---:|---:|---|');
    row('HTTP/1.1 CPU/request vs nginx', GOALS.h1VsNginx, vsNginx('h1'), '×');
    row('h2c CPU/request vs nginx', GOALS.h2cVsNginx, vsNginx('h2c'), '×');
    row('HTTP/1.1 over mTLS, CPU/request vs nginx', GOALS.mtlsH1VsNginx, vsNginx('mtls-h1'), '×');
    if (r.summary['mtls-h2']) out.push(`| h2 over mTLS, CPU/request vs nginx | (none set) | ${f(vsNginx('mtls-h2'), 2)}× | |`);
    row(`added p50 at ${c.rate} req/s vs nginx, HTTP/1.1`, GOALS.addedP50VsNginx, addedP50('rate-h1'), ' ms', 3);
    row(`added p50 at ${c.rate} req/s vs nginx, h2c`, GOALS.addedP50VsNginx, addedP50('rate-h2c'), ' ms', 3);
    row('idle RSS, settled', GOALS.idleRssMB, r.memory.pilotfish?.settledIdleRssMB, ' MB', 1);
    row('peak RSS', GOALS.peakRssMB, r.memory.pilotfish?.hwmMB, ' MB', 1);
    out.push('');
  }
  if (Object.keys(r.skipped).length) {
    out.push('### Skipped targets', '');
    for (const [n, why] of Object.entries(r.skipped)) out.push(`- ${n}: ${why.split('\n')[0]}`);
    out.push('');
  }
  const failed = r.runs.filter((x) => x.error);
  if (failed.length) {
    out.push('### Failed measurements', '');
    for (const x of failed) out.push(`- round ${x.round} ${x.scenario} ${x.target}: ${x.error.split('\n')[0]}`);
    out.push('');
  }
  return out.join('\n') + '\n';
}
