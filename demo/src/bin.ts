// The pilotfish CLI from source (run with `node --import tsx`): what the demo starts its
// sidecars with when it runs from a checkout without a build.
import { main } from '../../proxy/src/main.js';

process.exitCode = await main(process.argv.slice(2));
