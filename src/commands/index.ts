import { createLogger } from '../cli/log.ts';
import type { Invocation } from '../cli/program.ts';
import { ExitCode, errorMessage, UsageError } from '../errors.ts';
import { type BackupPveOptions, backupPve } from './backup-pve.ts';
import { type ReplicateOptions, replicate } from './replicate.ts';

/** Runs a parsed command and returns its exit code. */
export async function runCommand(inv: Invocation): Promise<number> {
  const log = createLogger({ verbose: inv.options.verbose === true });
  try {
    switch (inv.command) {
      case 'backup-pve':
        return await backupPve(inv.options as unknown as BackupPveOptions, log);
      case 'replicate':
        return await replicate(inv.options as unknown as ReplicateOptions, log);
      default:
        log.error(`zbm ${inv.command} is not implemented yet`);
        return ExitCode.failure;
    }
  } catch (err) {
    log.error(errorMessage(err));
    return err instanceof UsageError ? ExitCode.usage : ExitCode.failure;
  }
}
