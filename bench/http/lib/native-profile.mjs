// Native CPU profile of a target over the measured window: `perf record` on its pid (all
// threads), summarised by where the time goes — kernel, TLS (OpenSSL and node's TLSWrap),
// JavaScript (JIT code), V8's builtins/runtime/GC, libuv, node's other C++, libc. V8's own
// profiler cannot make this split: it charges TLS encryption and the system call beneath
// a write alike to the native function that made it (`writev`), and the kernel's receive
// work to whoever was running. Works for nginx and HAProxy too, for a same-run comparison.
import { spawn, spawnSync } from 'node:child_process';
import { processTree } from './proc.mjs';

/** perf is there and may profile other processes (root or perf_event_paranoid <= 1). */
export function perfAvailable() {
  const r = spawnSync('perf', ['--version'], { encoding: 'utf8' });
  return r.status === 0;
}

/**
 * Starts `perf record` on `pid` and its descendants (nginx's worker under its master) for
 * `seconds`; resolves when perf has written `file`.
 */
export function perfRecord({ pid, seconds, file, frequency = 999 }) {
  return new Promise((resolve, reject) => {
    const pids = processTree(pid).join(',');
    const p = spawn('perf', ['record', '-F', String(frequency), '-p', pids, '-o', file, '--', 'sleep', String(seconds)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), (seconds + 30) * 1000);
    p.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(file);
      else reject(new Error(`perf record failed (${code}): ${err.trim().split('\n').pop()}`));
    });
  });
}

// OpenSSL's record layer and ciphers, node's TLSWrap and its memory BIO; both nginx and
// HAProxy link libssl/libcrypto, node has them built in.
const TLS_SYM = /^(ssl|tls|SSL_|TLS_|d2i_|i2d_)|ssl3_|tls1|tls13|aes|gcm|ghash|chacha|poly1305|EVP_|BIO_|CRYPTO_|OPENSSL_|ossl_|ctr32|sha256|sha512|ecp_nistz256|bn_|BN_|OSSL_|crypto::TLSWrap|NodeBIO|ngx_ssl|ssl_sock/;

export function category(dso, sym) {
  if (dso === '[kernel.kallsyms]') return 'kernel';
  if (/^lib(ssl|crypto)\.so/.test(dso) || TLS_SYM.test(sym)) return 'TLS (OpenSSL, TLSWrap)';
  if (dso.startsWith('[JIT]') || dso.startsWith('perf-') || sym.startsWith('JS:')) return 'JavaScript (JIT code)';
  if (dso === 'node' && /^(Builtins_|v8::|V8_|_ZN2v8)/.test(sym)) return 'V8 builtins, runtime, GC';
  if (/^uv_|^uv__/.test(sym)) return 'libuv';
  if (dso === 'node') return 'node C++ (other)';
  if (/^libc\.so|^ld-linux/.test(dso)) return 'libc (malloc, memcpy, syscall stubs)';
  if (/^(nginx|haproxy)$/.test(dso)) return `${dso} (own code)`;
  return `other (${dso})`;
}

/** { categories: [[name, share]], top: [[dso, sym, share]] } from a perf.data file. */
export function summarizePerf(file) {
  const r = spawnSync('perf', ['report', '-i', file, '--no-children', '-g', 'none', '--sort', 'dso,sym', '--stdio'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`perf report failed: ${r.stderr}`);
  const byCat = new Map();
  const top = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s+([\d.]+)%\s+(\S+(?: tid \d+)?)\s+\[[.k]\]\s+(.*)$/.exec(line);
    if (!m) continue;
    const share = Number(m[1]) / 100, dso = m[2], sym = m[3].trim();
    const c = category(dso, sym);
    byCat.set(c, (byCat.get(c) ?? 0) + share);
    if (top.length < 25) top.push([dso, sym, share, c]);
  }
  return { categories: [...byCat.entries()].sort((a, b) => b[1] - a[1]), top };
}

export function renderPerf(title, s, file, usPerReq) {
  const us = (share) => (usPerReq ? ` (${(share * usPerReq).toFixed(1)} µs)` : '');
  const out = [`## ${title}`, '', `perf data: ${file}. Share of the target's CPU samples (all threads), and µs per request = share × measured CPU µs/request.`, '',
    '| where | share |', '|---|---:|'];
  for (const [c, share] of s.categories) out.push(`| ${c} | ${(share * 100).toFixed(1)}%${us(share)} |`);
  out.push('', '| # | share | symbol | dso | category |', '|---:|---:|---|---|---|');
  s.top.forEach(([dso, sym, share, c], i) => out.push(`| ${i + 1} | ${(share * 100).toFixed(1)}%${us(share)} | \`${sym.replace(/\|/g, '\\|')}\` | ${dso} | ${c} |`));
  return out.join('\n') + '\n';
}
