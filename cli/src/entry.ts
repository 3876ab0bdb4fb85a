// The pilotfish CLI from source (`node --import tsx cli/src/entry.ts ...`): what the demo
// starts its sidecars with when it runs from a checkout without a build.
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
