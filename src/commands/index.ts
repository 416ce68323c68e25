import { createLogger, type Logger } from '../cli/log.ts';
import { completionScript, type Invocation } from '../cli/program.ts';
import { ExitCode, errorMessage, speaksMonitoringPlugin, UsageError } from '../errors.ts';
import { showCommandLines } from '../host/failure.ts';
import { configureConnectRetry, retriesFromEnv } from '../host/retry.ts';
import { Metrics } from '../metrics/prometheus.ts';
import { afterRun, reportOptions } from '../notify/after-run.ts';
import { backupPve } from './backup-pve.ts';
import { configCheck, installTimers } from './config.ts';
import { drill } from './drill.ts';
import { files } from './files.ts';
import { listBackups } from './list-backups.ts';
import { prepareRollback } from './prepare-rollback.ts';
import { prune } from './prune.ts';
import { replicate } from './replicate.ts';
import { restore } from './restore.ts';
import { serve } from './serve.ts';
import { status } from './status.ts';
import { verify } from './verify.ts';

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
    try {
      // Info, not a warning: a retry that then succeeds must not turn the run's exit code.
      configureConnectRetry({
        retries: retriesFromEnv(process.env.ZBM_SSH_RETRIES),
        report: (m) => log.info(m),
      });
    } catch (err) {
      throw new UsageError(errorMessage(err));
    }
    switch (inv.command) {
      case 'backup-pve':
        return await backupPve(inv.options, log, metrics);
      case 'prune':
        return await prune(inv.options, log);
      case 'replicate':
        return await replicate(inv.options, log);
      case 'verify':
        return await verify(inv.options, log, metrics);
      case 'drill':
        return await drill(inv.options, log, metrics);
      case 'completion':
        process.stdout.write(completionScript());
        return ExitCode.ok;
      case 'serve':
        return await serve(inv.options, log);
      case 'config-check':
        return await configCheck(inv.options, log);
      case 'install-timers':
        return await installTimers(inv.options, log);
      case 'status':
        return await status(inv.options, log);
      case 'list-backups':
        return await listBackups(inv.options, log);
      case 'prepare-rollback':
        return await prepareRollback(inv.options, log);
      case 'restore':
        return await restore(inv.options, log);
      case 'files':
        return await files(inv.options, log);
      default:
        log.error(`zbm ${inv.command} is not implemented yet`);
        return ExitCode.failure;
    }
  } catch (err) {
    log.error(errorMessage(err));
    if (err instanceof UsageError) return ExitCode.usage;
    // A check that could not run is UNKNOWN to a monitoring system, not a failed backup.
    return speaksMonitoringPlugin(inv.command) ? ExitCode.unknown : ExitCode.failure;
  }
}
