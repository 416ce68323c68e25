import { confirm as askOnTerminal } from '../cli/confirm.ts';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { ExitCode, UsageError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { LocalHost } from '../host/local.ts';
import { SshHost } from '../host/ssh.ts';
import { metadataDirOption } from '../metadata/store.ts';
import { gatherFacts, type PruneScope, unreachableOf } from '../prune/facts.ts';
import { planHeader, printPlan, printResult, pruneJson } from '../prune/report.ts';
import { hasRules, type KeepRules } from '../prune/retention.ts';
import { destroyAll, planAll, pruneMetadataAfter } from '../prune/run.ts';
import { processZone, zoneNamed } from '../time/zone.ts';
import { Zfs } from '../zfs/zfs.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type PruneOptions = CommandOptions<'prune'>;

/** What the command touches outside zfs; tests replace it. */
export interface PruneIO {
  readonly out?: (s: string) => void;
  readonly local?: Host;
  readonly remote?: (destination: string) => Host;
  /** Asks on the terminal; undefined when there is no terminal to ask on. */
  readonly confirm?: ((question: string) => Promise<boolean>) | undefined;
  /** A TZ value, read as libc reads it (default: this process's TZ). */
  readonly timeZone?: string;
  /** This host's clock, seconds since the epoch: a snapshot named later is an anomaly. */
  readonly now?: () => number;
}

function rulesOf(opts: PruneOptions): KeepRules {
  return {
    last: opts.keepLast,
    hourly: opts.keepHourly,
    daily: opts.keepDaily,
    weekly: opts.keepWeekly,
    monthly: opts.keepMonthly,
    yearly: opts.keepYearly,
  };
}

/**
 * Applies Proxmox-style retention to zbm's snapshots under --local-zfs-root, never destroying what
 * the next tier still needs nor anything held. Without -y it only shows the plan.
 */
export async function prune(opts: PruneOptions, log: Logger, io: PruneIO = {}): Promise<number> {
  const out = io.out ?? writeOut;
  if (opts.remoteZfsRoot !== undefined && opts.remote === undefined) {
    throw new UsageError('--remote-zfs-root needs --remote (the ssh destination of the next tier)');
  }
  if (opts.remote !== undefined && opts.remoteZfsRoot === undefined) {
    throw new UsageError(
      `--remote needs --remote-zfs-root: the dataset on ${opts.remote} that mirrors ${opts.localZfsRoot}`,
    );
  }
  const metadataDir = metadataDirOption({
    localMetadataDir: opts.localMetadataDir,
    metadataDir: opts.metadataDir,
  });
  const rules = rulesOf(opts);
  const zone = io.timeZone === undefined ? processZone() : zoneNamed(io.timeZone);
  const destroying = opts.yes === true && opts.dryRun !== true;
  if (!hasRules(rules)) log.info('no --keep-* rule given (or all 0): every snapshot is kept, as in Proxmox');

  const local = io.local ?? new LocalHost();
  const localZfs = new Zfs(local);
  const remoteHost = opts.remote === undefined ? null : (io.remote ?? ((d) => new SshHost(d)))(opts.remote);
  try {
    const scope: PruneScope = {
      localZfsRoot: opts.localZfsRoot,
      prefix: opts.prefix,
      ...(remoteHost && opts.remote !== undefined && opts.remoteZfsRoot !== undefined
        ? { remote: { host: opts.remote, zfsRoot: opts.remoteZfsRoot, zfs: new Zfs(remoteHost) } }
        : {}),
    };
    const facts = await gatherFacts(localZfs, scope);
    if (!facts) {
      log.error(`on ${local.name}: ${opts.localZfsRoot} does not exist; nothing to prune`);
      return ExitCode.failure;
    }
    const unreachable = unreachableOf(facts.remote);
    const now = io.now?.() ?? Math.floor(Date.now() / 1000);
    const outcomes = planAll(facts, scope, { localName: local.name, rules, zone, now }, log);

    const planned = outcomes.reduce((n, o) => n + o.plan.destroy.length, 0);
    let go = destroying;
    if (!destroying) {
      if (!opts.json) {
        printPlan(planHeader(local.name, opts, rules, zone), outcomes, zone, out);
      }
      const ask = io.confirm ?? (process.stdin.isTTY === true ? askOnTerminal : undefined);
      if (planned === 0) {
        log.info('nothing to destroy');
      } else if (opts.dryRun || opts.json) {
        log.info(`dry run: nothing destroyed (${planned} snapshot(s) would be)`);
      } else if (ask) {
        go = await ask(`Destroy the ${planned} snapshot(s) marked "destroy" above?`);
        if (!go) log.info('nothing destroyed');
      } else {
        log.info(
          `dry run: nothing destroyed; run with -y to destroy the ${planned} snapshot(s) marked "destroy"`,
        );
      }
    }

    if (go) await destroyAll(localZfs, outcomes, opts.lockWait * 1000, log);

    const metadata = await pruneMetadataAfter(
      facts,
      outcomes,
      { metadataDir, localZfsRoot: opts.localZfsRoot, prefix: opts.prefix, destroying: go, now },
      log,
    );

    if (opts.json) {
      const report = pruneJson({
        localZfsRoot: opts.localZfsRoot,
        prefix: opts.prefix,
        rules,
        zone,
        remote: opts.remote,
        remoteZfsRoot: opts.remoteZfsRoot,
        unreachable,
        destroying: go,
        outcomes,
        metadata,
      });
      out(`${JSON.stringify(report, null, 2)}\n`);
    } else if (go) {
      printResult(outcomes, out);
    }

    if (unreachable !== null) {
      log.error(
        `${opts.remote} is unreachable, so every snapshot from the last base held for it on was kept (exit code 1): ${unreachable}`,
      );
    }
    const failed = unreachable !== null || outcomes.some((o) => o.error !== null) || log.problems.errors > 0;
    return failed ? ExitCode.failure : ExitCode.ok;
  } finally {
    await remoteHost?.close();
  }
}
