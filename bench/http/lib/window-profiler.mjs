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
process.on('SIGTERM', async () => {
  try {
    if (started && out) writeFileSync(out, JSON.stringify((await post('Profiler.stop')).profile));
  } finally {
    process.exit(0);
  }
});
