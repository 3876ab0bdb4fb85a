import { ConfigError, VERSION } from '../../proxy/src/index.js';
import { UsageError } from './args.js';
import { runProxyCommand } from './proxy-command.js';
import { runExampleCommand } from './example-command.js';
import { isEnvoyInvocation, runEnvoyCommand } from './envoy-command.js';

/**
 * The `pilotfish` command line. Each subcommand lives with its module; this file only
 * dispatches and turns errors into one line and an exit code. cli/ depends on the parts
 * (proxy, certs, controlplane, fastpath, demo); none of them imports cli/.
 */
type Command = { help: string; run: (argv: string[]) => Promise<number> };

const commands: Record<string, Command> = {
  proxy: { help: 'run the proxy with an Envoy v3 bootstrap', run: runProxyCommand },
  example: { help: 'run the bundled example: a demo upstream with pilotfish in front', run: runExampleCommand },
  certs: { help: 'dev CA: mint a root and SPIFFE workload certificates', run: async (a) => (await import('../../certs/src/index.js')).runCertsCommand(a) },
  controlplane: { help: 'serve xDS (SotW and Delta ADS) from a mesh YAML', run: async (a) => (await import('../../controlplane/src/index.js')).runControlPlaneCommand(a) },
  fastpath: { help: 'eBPF fast path: status', run: async (a) => (await import('../../fastpath/src/index.js')).runFastPathCommand(a) },
  envoy: { help: 'Envoy\'s command line (-c FILE, --drain-time-s, ...): what pilot-agent runs; also taken when the first argument is an Envoy flag', run: runEnvoyCommand },
  demo: { help: 'run a whole mesh locally: control plane, services, sidecars, waypoint, mTLS, live traffic table', run: async (a) => (await import('../../demo/src/index.js')).runDemoCommand(a) },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return `Usage: pilotfish <command> [options]\n\nCommands:\n${Object.entries(commands)
    .map(([name, c]) => `  ${name.padEnd(width)}  ${c.help}`)
    .join('\n')}\n\nRun 'pilotfish <command> --help' for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`pilotfish ${VERSION}\n`);
    return 0;
  }
  // A supervisor written for Envoy (Istio's pilot-agent) runs the binary with Envoy's flags and no subcommand.
  if (isEnvoyInvocation(name)) return main(['envoy', ...argv]);
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`pilotfish: unknown command "${name}" (see pilotfish --help)\n`);
    return 2;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`pilotfish ${name}: ${e.message}\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`pilotfish ${name}: invalid configuration: ${e.message.split('\n').join('\n  ')}\n`);
      return 1;
    }
    process.stderr.write(`pilotfish ${name}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
