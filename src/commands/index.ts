import { createLogger } from '../cli/log.ts';
import type { Invocation } from '../cli/program.ts';
import { ExitCode, errorMessage, UsageError } from '../errors.ts';
import { type BackupPveOptions, backupPve } from './backup-pve.ts';
import { type PruneOptions, prune } from './prune.ts';
import { type ReplicateOptions, replicate } from './replicate.ts';
import { type VerifyOptions, verify } from './verify.ts';

const VERIFY_UNKNOWN = 3;

/** Runs a parsed command and returns its exit code. */
export async function runCommand(inv: Invocation): Promise<number> {
  const log = createLogger({ verbose: inv.options.verbose === true });
  try {
    switch (inv.command) {
      case 'backup-pve':
        return await backupPve(inv.options as unknown as BackupPveOptions, log);
      case 'prune':
        return await prune(inv.options as unknown as PruneOptions, log);
      case 'replicate':
        return await replicate(inv.options as unknown as ReplicateOptions, log);
      case 'verify':
        return await verify(inv.options as unknown as VerifyOptions, log);
      default:
        log.error(`zbm ${inv.command} is not implemented yet`);
        return ExitCode.failure;
    }
  } catch (err) {
    log.error(errorMessage(err));
    if (err instanceof UsageError) return ExitCode.usage;
    // A check that could not run is UNKNOWN to a monitoring system, not a failed backup.
    return inv.command === 'verify' ? VERIFY_UNKNOWN : ExitCode.failure;
  }
}
