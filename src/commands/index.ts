import { createLogger, type Logger } from '../cli/log.ts';
import { completionScript, type Invocation } from '../cli/program.ts';
import { ExitCode, errorMessage, UsageError } from '../errors.ts';
import { showCommandLines } from '../host/failure.ts';
import { Metrics } from '../metrics/prometheus.ts';
import { afterRun, reportOptions } from '../notify/after-run.ts';
import { type BackupPveOptions, backupPve } from './backup-pve.ts';
import { type ConfigCheckOptions, configCheck, type InstallTimersOptions, installTimers } from './config.ts';
import { type ListBackupsOptions, listBackups } from './list-backups.ts';
import { type PrepareRollbackOptions, prepareRollback } from './prepare-rollback.ts';
import { type PruneOptions, prune } from './prune.ts';
import { type ReplicateOptions, replicate } from './replicate.ts';
import { type RestoreOptions, restore } from './restore.ts';
import { type ServeOptions, serve } from './serve.ts';
import { type StatusOptions, status } from './status.ts';
import { type VerifyOptions, verify } from './verify.ts';

/**
 * Runs a parsed command and returns its exit code. Afterwards, whatever the command: the
 * notification (--notify-*) and the metrics file (--prometheus-textfile).
 */
export async function runCommand(
  inv: Invocation,
  argv: readonly string[] = process.argv.slice(2),
): Promise<number> {
  const verbose = inv.options.verbose === true;
  showCommandLines(verbose);
  const log = createLogger({ verbose });
  const metrics = new Metrics();
  const started = new Date();
  const exitCode = await execute(inv, log, metrics);
  await afterRun(reportOptions(inv.options), { command: inv.command, argv, exitCode, started, log, metrics });
  return exitCode;
}

async function execute(inv: Invocation, log: Logger, metrics: Metrics): Promise<number> {
  try {
    switch (inv.command) {
      case 'backup-pve':
        return await backupPve(inv.options as unknown as BackupPveOptions, log, metrics);
      case 'prune':
        return await prune(inv.options as unknown as PruneOptions, log);
      case 'replicate':
        return await replicate(inv.options as unknown as ReplicateOptions, log);
      case 'verify':
        return await verify(inv.options as unknown as VerifyOptions, log, metrics);
      case 'completion':
        process.stdout.write(completionScript());
        return ExitCode.ok;
      case 'serve':
        return await serve(inv.options as unknown as ServeOptions, log);
      case 'config-check':
        return await configCheck(inv.options as unknown as ConfigCheckOptions, log);
      case 'install-timers':
        return await installTimers(inv.options as unknown as InstallTimersOptions, log);
      case 'status':
        return await status(inv.options as unknown as StatusOptions, log);
      case 'list-backups':
        return await listBackups(inv.options as unknown as ListBackupsOptions, log);
      case 'prepare-rollback':
        return await prepareRollback(inv.options as unknown as PrepareRollbackOptions, log);
      case 'restore':
        return await restore(inv.options as unknown as RestoreOptions, log);
      default:
        log.error(`zbm ${inv.command} is not implemented yet`);
        return ExitCode.failure;
    }
  } catch (err) {
    log.error(errorMessage(err));
    if (err instanceof UsageError) return ExitCode.usage;
    // A check that could not run is UNKNOWN to a monitoring system, not a failed backup.
    return inv.command === 'verify' ? ExitCode.unknown : ExitCode.failure;
  }
}
