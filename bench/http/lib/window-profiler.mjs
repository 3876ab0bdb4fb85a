// Preloaded (--import) in profile mode. CPU-profiles only the measured window:
// SIGUSR2 starts the V8 sampling profiler, SIGTERM stops it, writes
// $PILOTFISH_BENCH_PROFILE (a .cpuprofile) and exits, so start-up, config loading
// and warm-up stay out of the profile.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';

const out = process.env.PILOTFISH_BENCH_PROFILE;
const interval = Number(process.env.PILOTFISH_BENCH_PROFILE_INTERVAL_US ?? 200);
const session = new Session();
session.connect();
const post = (method, params = {}) =>
  new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
let started = false;

process.on('SIGUSR2', async () => {
  if (started) return;
  started = true;
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval });
  await post('Profiler.start');
});
// Prepended and callback-style: the in-process inspector session answers synchronously,
// so the profile is on disk before any SIGTERM handler of the target calls process.exit().
process.prependListener('SIGTERM', () => {
  if (!started || !out) process.exit(0);
  session.post('Profiler.stop', (err, res) => {
    if (!err) writeFileSync(out, JSON.stringify(res.profile));
    process.exit(0);
  });
});
