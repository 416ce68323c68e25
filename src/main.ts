import { parseCommandLine } from './cli/program.ts';
import { runCommand } from './commands/index.ts';
import { ExitCode } from './errors.ts';
import { stopAll } from './host/children.ts';

let stopping = false;
function onSignal(signal: NodeJS.Signals): void {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`zbm: ${signal} received, stopping child processes\n`);
  // Children first: a `zfs receive -s` that is stopped keeps its resumable state.
  void stopAll().finally(() => process.exit(ExitCode.interrupted));
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);

const parsed = parseCommandLine(process.argv.slice(2), {
  writeOut: (s) => process.stdout.write(s),
  writeErr: (s) => process.stderr.write(s),
});
process.exitCode = typeof parsed === 'number' ? parsed : await runCommand(parsed);
