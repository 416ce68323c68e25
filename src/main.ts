import { parseCommandLine } from './cli/program.ts';
import { expandRun } from './cli/run-job.ts';
import { runCommand } from './commands/index.ts';
import { ExitCode } from './errors.ts';
import { runInterruptCleanups, stopAll } from './host/children.ts';

let stopping = false;
function onSignal(signal: NodeJS.Signals): void {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`warning: ${signal} received: stopping child processes\n`);
  // Children first: a `zfs receive -s` that is stopped keeps its resumable state.
  // Then what must not be skipped (a frozen guest's thaw), which starts children of its own.
  void stopAll()
    .then(() => runInterruptCleanups())
    .finally(() => process.exit(ExitCode.interrupted));
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);

// `zbm --help | head`: a reader that went away is no error of ours; what is left to print is dropped.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

const io = {
  writeOut: (s: string) => process.stdout.write(s),
  writeErr: (s: string) => process.stderr.write(s),
};
async function main(): Promise<number> {
  let parsed = parseCommandLine(process.argv.slice(2), io);
  // `zbm run <job>` stands for the job's command line from the config file.
  if (typeof parsed !== 'number' && parsed.command === 'run') parsed = expandRun(parsed.options, io);
  return typeof parsed === 'number' ? parsed : await runCommand(parsed);
}
// The bundle is CommonJS (see scripts/launcher.cjs), which has no top-level await.
void main().then((code) => {
  process.exitCode = code;
});
