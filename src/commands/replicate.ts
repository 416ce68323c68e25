import { confirm } from '../cli/confirm.ts';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { Progress } from '../cli/progress.ts';
import { ExitCode } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { SshHost } from '../host/ssh.ts';
import { printPlan, printResult } from '../replicate/report.ts';
import { divergedTargets, gatherFacts, type ReplicationEnd, runReplication } from '../replicate/run.ts';
import { Zfs } from '../zfs/zfs.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type ReplicateOptions = CommandOptions<'replicate'>;

/**
 * Mirrors every dataset under the source root to the same relative path under the target root,
 * with every selected snapshot the target lacks (its history is pruned by its own rules later).
 * Push (default): this host is the source and --remote the replica. Pull (--pull): --remote is the
 * source, so the backup server needs no credentials on the replica. Both run this same code; only
 * which side is which changes.
 */
export async function replicate(opts: ReplicateOptions, log: Logger): Promise<number> {
  const localHost = new LocalHost();
  const remoteHost = new SshHost(opts.remote);
  const local: ReplicationEnd = {
    host: localHost,
    zfs: new Zfs(localHost),
    root: opts.localZfsRoot,
    metadataDir: opts.localMetadataDir,
  };
  const remote: ReplicationEnd = {
    host: remoteHost,
    zfs: new Zfs(remoteHost),
    root: opts.remoteZfsRoot,
    metadataDir: opts.remoteMetadataDir,
  };
  const [source, target] = opts.pull ? [remote, local] : [local, remote];
  const select = (short: string) => opts.prefix === undefined || short.startsWith(opts.prefix);
  const progress = new Progress(process.stderr.isTTY === true && !opts.json);
  const out = writeOut;
  try {
    const facts = await gatherFacts(source, target, select, log);
    if (!facts) {
      log.error(`${source.host.name}: ${source.root} does not exist; nothing to replicate`);
      return ExitCode.failure;
    }

    if (opts.dryRun) {
      printPlan(facts, source, target, select, out);
      return ExitCode.ok;
    }

    const rollBack = opts.forceRollback
      ? await confirmRollback(divergedTargets(facts, source, target, select), opts.yes === true, log)
      : false;

    const { results, protectFailed, metadataFailed } = await runReplication(
      facts,
      source,
      target,
      {
        select,
        pull: opts.pull,
        jobs: opts.jobs,
        lockWait: opts.lockWait,
        bwlimit: opts.bwlimit,
        rollBack,
      },
      log,
      progress,
    );

    printResult(source, target, results, facts.orphans, opts.json, out);
    return results.some((r) => r.result !== 'ok') || metadataFailed || protectFailed
      ? ExitCode.failure
      : ExitCode.ok;
  } finally {
    progress.clear();
    await remoteHost.close();
  }
}

/**
 * --force-rollback destroys the later snapshots of each diverged target: like every destroy, only
 * with -y or a yes on a terminal. Without, the diverged datasets are refused as usual.
 */
async function confirmRollback(diverged: readonly string[], yes: boolean, log: Logger): Promise<boolean> {
  if (diverged.length === 0 || yes) return true;
  const list = diverged.join(', ');
  if (process.stdin.isTTY === true) {
    if (await confirm(`Roll back ${list} to the newest common snapshot, destroying what came after it?`))
      return true;
    log.error(`not confirmed: ${list} not rolled back`);
    return false;
  }
  log.error(
    `--force-rollback would destroy the later snapshots and changes of ${list}: not rolled back without -y (run again with -y to confirm)`,
  );
  return false;
}
