import { confirm } from '../cli/confirm.ts';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { Progress } from '../cli/progress.ts';
import { holdTag } from '../conventions/names.ts';
import { ExitCode, errorMessage } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { LocalHost } from '../host/local.ts';
import { RateLimiter } from '../host/rate.ts';
import { SshHost } from '../host/ssh.ts';
import { acquire, datasetLockName, describeHolder, describeWait } from '../lock/lock.ts';
import { copyMetadata } from '../metadata/copy.ts';
import { chooseMetadataDir, METADATA_DIR_PROPERTY } from '../metadata/store.ts';
import { describeConflict } from '../plan/diff.ts';
import { cloneWaves, isNewClone, planCloneStart } from '../replicate/clones.ts';
import { type MirrorPair, mirrorPairs } from '../replicate/pairs.ts';
import { formatBytes } from '../text/human.ts';
import { type BasePair, protectBases } from '../transfer/protect.ts';
import { sendEach } from '../transfer/send-loop.ts';
import { planSync, type SyncResult, syncDataset } from '../transfer/sync.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type ReplicateOptions = CommandOptions<'replicate'>;

export interface DatasetResult {
  readonly source: string;
  readonly target: string;
  readonly result: 'ok' | 'failed' | 'skipped';
  readonly mode?: SyncResult['mode'];
  readonly resumed?: SyncResult['resumed'];
  readonly sent: readonly string[];
  readonly bytes: number;
  readonly error?: string;
}

/** One pair's transfer: its result, and its new common snapshot to protect when it went through. */
interface SentPair {
  readonly result: DatasetResult;
  readonly base?: BasePair;
}

/** One end of the replication: where it runs, its root, and where its guest configs live. */
interface ReplicationEnd {
  readonly host: Host;
  readonly zfs: Zfs;
  readonly root: string;
  /** --local-metadata-dir or --remote-metadata-dir, whichever names this side. */
  readonly metadataDir: string | undefined;
}

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
  const at = (side: ReplicationEnd, dataset: string) => ({ host: side.host.name, dataset });
  const select = (short: string) => opts.prefix === undefined || short.startsWith(opts.prefix);
  const progress = new Progress(process.stderr.isTTY === true && !opts.json);
  const out = writeOut;
  try {
    // One listing per side, side by side; the target root's own line says whether it exists.
    const [sourceList, targetList] = await Promise.all([
      // origin: a disk's later chain is a clone, and travels as one (replicate/clones.ts).
      source.zfs.list({ roots: [source.root], userProps: [METADATA_DIR_PROPERTY], withOrigin: true }),
      target.zfs.list({ roots: [target.root], userProps: [METADATA_DIR_PROPERTY] }),
    ]);
    if (sourceList.length === 0) {
      log.error(`${source.host.name}: ${source.root} does not exist; nothing to replicate`);
      return ExitCode.failure;
    }
    const targetRoot = targetList.find((d) => d.name === target.root);
    const targetRootExists = targetRoot !== undefined;
    const { pairs, orphans } = mirrorPairs(source.root, sourceList, target.root, targetList, select);
    let targets = new Map(targetList.map((d) => [d.name, d]));
    const sources = new Map(sourceList.map((d) => [d.name, d]));
    // Against the target as last listed: the second wave sees the origins the first one sent.
    const cloneStart = (pair: MirrorPair) =>
      planCloneStart(pair, source.root, sources, target.root, targets, select);
    for (const o of orphans)
      log.warn(
        `${target.host.name}:${o}: no longer on ${source.host.name} (guest deleted?): kept, never destroyed by zbm; ` +
          'destroy it yourself once its backups are no longer needed',
      );

    if (opts.dryRun) {
      out(
        `plan (dry run, nothing is changed): replicate ${source.host.name}:${source.root} to ${target.host.name}:${target.root}\n`,
      );
      for (const { source: d, target: t } of pairs) {
        const plan = planSync(
          { zfs: source.zfs, dataset: d.name, listing: d },
          { zfs: target.zfs, dataset: t, listing: targets.get(t) ?? null },
          select,
        );
        const clone = cloneStart({ source: d, target: t });
        const what = clone
          ? `a clone of ${clone.origin}, ${clone.steps.length} snapshot(s): ${clone.steps.map((s) => s.to.short).join(', ')}`
          : plan.kind === 'full' || plan.kind === 'incremental'
            ? `${plan.kind}, ${plan.steps.length} snapshot(s): ${plan.steps.map((s) => s.to.short).join(', ')}`
            : plan.kind === 'up-to-date'
              ? 'up to date'
              : `refused: ${describeConflict(plan, at(source, d.name), at(target, t), '--force-rollback -y')}`;
        out(
          `${d.name} → ${t}: ${what}${targets.get(t)?.resumeToken ? ' (first resumes an interrupted transfer)' : ''}\n`,
        );
      }
      for (const o of orphans) out(`${o}: kept (no longer on ${source.host.name})\n`);
      return ExitCode.ok;
    }

    const rollBack = opts.forceRollback
      ? await confirmRollback(
          pairs
            .filter(
              (p) =>
                planSync(
                  { zfs: source.zfs, dataset: p.source.name, listing: p.source },
                  { zfs: target.zfs, dataset: p.target, listing: targets.get(p.target) ?? null },
                  select,
                ).kind === 'diverged',
            )
            .map((p) => `${target.host.name}:${p.target}`),
          opts.yes === true,
          log,
        )
      : false;

    if (!targetRootExists) {
      log.info(`creating ${target.host.name}:${target.root}`);
      await target.zfs.create(target.root);
    }
    const limiter = opts.bwlimit ? new RateLimiter(opts.bwlimit) : undefined;
    // Each pair of hosts has its own tag, so two replicas of one server never release each other's base.
    const tag = holdTag(source.host.name, target.host.name);
    // --jobs streams at a time; in the order of the pairs, whatever order the transfers end in.
    const sendWave = (wave: readonly MirrorPair[]) =>
      sendEach(
        wave,
        {
          jobs: opts.jobs,
          failed: ({ source: d, target: targetName }, err): SentPair => {
            progress.clear();
            const error = errorMessage(err);
            log.error(`${source.host.name}:${d.name} → ${target.host.name}:${targetName}: ${error}`);
            return {
              result: { source: d.name, target: targetName, sent: [], bytes: 0, result: 'failed', error },
            };
          },
        },
        async ({ source: d, target: targetName }, takeStream): Promise<SentPair> => {
          const base = { source: d.name, target: targetName, sent: [], bytes: 0 };
          // The lock lives on this host, so it is named after this host's side of the pair.
          const lockName = opts.pull ? targetName : d.name;
          const acquired = await acquire(
            datasetLockName(lockName),
            `replicate ${d.name}`,
            opts.lockWait * 1000,
            (h, ms) => log.info(describeWait(lockName, h, ms)),
          );
          if ('heldBy' in acquired) {
            const error = `skipped: ${describeHolder(acquired.heldBy)} is working on ${lockName}`;
            log.warn(error);
            return { result: { ...base, result: 'skipped', error } };
          }
          try {
            // Only once the dataset is ours: a pair waiting for its lock holds no stream's place.
            const streamEnded = await takeStream();
            let before = targets.get(targetName) ?? null;
            const sourceSide = { zfs: source.zfs, dataset: d.name, listing: d };
            const clone = cloneStart({ source: d, target: targetName });
            if (clone)
              log.info(
                `${target.host.name}:${targetName}: starts as a clone of ${clone.origin}, as ${d.name} is one`,
              );
            else if (isNewClone({ source: d, target: targetName }, source.root, targets))
              log.warn(
                `${target.host.name}:${targetName}: the origin of ${d.name} (${d.origin}) is not on ${target.host.name}: sent whole`,
              );
            if (rollBack && before) {
              const plan = planSync(
                sourceSide,
                { zfs: target.zfs, dataset: targetName, listing: before },
                select,
              );
              if (plan.kind === 'diverged') {
                log.warn(
                  `${target.host.name}:${targetName}: rolling back to ${plan.common.short} (guid ${plan.common.guid}) as --force-rollback asks`,
                );
                await target.zfs.rollback(`${targetName}@${plan.common.short}`);
                before =
                  (await target.zfs.list({ roots: [targetName], depth: 1 })).find(
                    (x) => x.name === targetName,
                  ) ?? null;
              }
            }
            const r = await syncDataset(
              sourceSide,
              { zfs: target.zfs, dataset: targetName, listing: before },
              {
                select,
                limiter,
                rollbackOption: '--force-rollback -y',
                // Pulling, the target is here and its lock is already ours.
                receiveLock: !opts.pull && { what: 'replicate', waitSeconds: opts.lockWait },
                onProgress: (b) => progress.update(d.name, b),
                onMessage: (m) => {
                  progress.clear();
                  log.warn(m);
                },
                onStreamsEnd: streamEnded,
                newChain: clone ?? undefined,
              },
            );
            progress.clear();
            if (r.sent.length > 0)
              log.info(
                `${source.host.name}:${d.name} → ${target.host.name}:${targetName}: ${r.mode}, ${r.sent.length} snapshot(s), ${formatBytes(r.bytes)}`,
              );
            return {
              result: {
                ...base,
                result: 'ok',
                mode: r.mode,
                resumed: r.resumed,
                sent: r.sent,
                bytes: r.bytes,
              },
              base: { source: d, target: targetName, targetBefore: before, common: r.common.short },
            };
          } finally {
            acquired.lock.release();
          }
        },
      );
    // New clones go once the rest is there, each after the wave that sends its origin: the
    // origin they start from is then on the target.
    const byPair = new Map<MirrorPair, Awaited<ReturnType<typeof sendWave>>[number]>();
    for (const [i, wave] of cloneWaves(pairs, source.root, targets).entries()) {
      if (i > 0) targets = new Map((await target.zfs.list({ roots: [target.root] })).map((d) => [d.name, d]));
      const done = await sendWave(wave);
      for (const [j, p] of wave.entries()) byPair.set(p, done[j] as (typeof done)[number]);
    }
    const sent = pairs.flatMap((p) => byPair.get(p) ?? []);
    const results = sent.map((s) => s.result);
    const bases = sent.flatMap((s) => s.base ?? []);

    // Side by side: the configs are copied while the bases are protected; neither changes the other.
    const [protectFailed, metadataFailed] = await Promise.all([
      protectBases(source.zfs, target.zfs, tag, bases, select, (message) => log.info(message)).then(
        () => false,
        (err: unknown) => {
          log.error(
            `protecting the new common snapshots on ${source.host.name} and ${target.host.name}: ${errorMessage(err)}`,
          );
          return true;
        },
      ),
      replicateMetadata(source, target, sourceList, targetRoot?.props[METADATA_DIR_PROPERTY], log).then(
        (ok) => !ok,
      ),
    ]);

    if (opts.json) {
      out(
        `${JSON.stringify({ source: source.host.name, target: target.host.name, datasets: results, kept: orphans }, null, 2)}\n`,
      );
    } else {
      const ok = results.filter((r) => r.result === 'ok');
      out(
        `replicated ${ok.length} of ${results.length} dataset(s) from ${source.host.name}:${source.root} to ${target.host.name}:${target.root}, ` +
          `${ok.reduce((n, r) => n + r.sent.length, 0)} snapshot(s), ${formatBytes(results.reduce((n, r) => n + r.bytes, 0))}\n`,
      );
      for (const r of results.filter((x) => x.result !== 'ok'))
        out(`  ${r.source}: ${r.result}: ${r.error}\n`);
      for (const o of orphans) out(`  ${o}: kept, no longer on ${source.host.name}\n`);
    }
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

/**
 * Copies the guest configs and manifests of the snapshots the target now holds. Where they come
 * from: the side's metadata-dir option, else the source root's zbm:metadata-dir property (set by
 * backup-pve); where they go: the target's option, else the same path. Returns false on failure.
 */
async function replicateMetadata(
  source: ReplicationEnd,
  target: ReplicationEnd,
  sourceList: readonly Dataset[],
  /** The target root's metadata directory property as listed at the start of the run. */
  targetProperty: string | undefined,
  log: Logger,
): Promise<boolean> {
  const property = sourceList.find((d) => d.name === source.root)?.props[METADATA_DIR_PROPERTY];
  const place = chooseMetadataDir(
    source.metadataDir,
    property,
    `${source.host.name}:${source.root}`,
    source.host.isLocal ? '--local-metadata-dir' : '--remote-metadata-dir',
  );
  if ('error' in place) {
    if (target.metadataDir || property !== undefined)
      log.warn(`${place.error} and no metadata directory was given for it: no guest configs copied`);
    return true;
  }
  if (place.warning) log.warn(place.warning);
  const from = place.dir;
  const to = target.metadataDir ?? from;
  try {
    const replicated = await target.zfs.list({ roots: [target.root] });
    const copied = await copyMetadata(
      { host: source.host, dir: from },
      { host: target.host, dir: to },
      replicated,
    );
    // prune and verify on the target find the configs through it; set only when it differs.
    if (targetProperty !== to)
      await target.zfs.setUserProperties(target.root, { [METADATA_DIR_PROPERTY]: to });
    if (copied > 0)
      log.info(`copied ${copied} guest config and manifest file(s) to ${target.host.name}:${to}`);
    return true;
  } catch (err) {
    log.error(
      `copying guest configs from ${source.host.name}:${from} to ${target.host.name}:${to}: ${errorMessage(err)}`,
    );
    return false;
  }
}
