// Runs `pilotfish proxy --config F --mode validate` for each file given, in this one process
// (one tsx start-up instead of one per file), and prints one JSON line per file:
// {file, code, stderr}. Used by corpus.test.ts.
import { main } from '../../cli/src/main.js';

const realWrite = process.stderr.write.bind(process.stderr);
for (const file of process.argv.slice(2)) {
  let captured = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    captured += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stderr.write;
  let code: number;
  try {
    code = await main(['proxy', '--config', file, '--mode', 'validate', '--log-level', 'error']);
  } catch (e) {
    code = -1;
    captured += `THREW: ${e instanceof Error ? e.stack : String(e)}`;
  } finally {
    process.stderr.write = realWrite;
  }
  process.stdout.write(`${JSON.stringify({ file, code, stderr: captured })}\n`);
}
