/**
 * The run of a replication, between two ends that the command made: both listings paired up
 * (pairs.ts), the diverged targets a --force-rollback would roll back, then every pair sent in
 * waves (a new clone after its origin, clones.ts), the new common snapshots held on both sides,
 * and the guest configs and manifests copied beside them.
 */
import { holdTag } from '../conventions/names.ts';
import { errorMessage } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { RateLimiter } from '../host/rate.ts';
import { acquire, datasetLockName, describeHolder, describeWait } from '../lock/lock.ts';
import { copyMetadata } from '../metadata/copy.ts';
import { chooseMetadataDir, METADATA_DIR_PROPERTY } from '../metadata/store.ts';
import { formatBytes } from '../text/human.ts';
import { type BasePair, protectBases } from '../transfer/protect.ts';
import { sendEach } from '../transfer/send-loop.ts';
import { planSync, type SyncResult, syncDataset } from '../transfer/sync.ts';
import type { Dataset } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';
import { cloneWaves, isNewClone, planCloneStart } from './clones.ts';
import { type MirrorPair, mirrorPairs } from './pairs.ts';

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
export interface ReplicationEnd {
  readonly host: Host;
  readonly zfs: Zfs;
  readonly root: string;
  /** --local-metadata-dir or --remote-metadata-dir, whichever names this side. */
  readonly metadataDir: string | undefined;
}

/** What a replication reports as it goes; the command's logger is one. */
export interface ReplicateLog {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
}

/** The progress line of the transfer under way; the command's terminal line is one. */
export interface ReplicateProgress {
  update(label: string, bytes: number): void;
  clear(): void;
}

/** What both ends hold at the start of a run, and how their datasets pair up. */
export interface ReplicateFacts {
  readonly sourceList: readonly Dataset[];
  /** The target root's own line: undefined when it does not exist yet. */
  readonly targetRoot: Dataset | undefined;
  readonly pairs: readonly MirrorPair[];
  /** Target datasets whose source is gone: kept, never destroyed. */
  readonly orphans: readonly string[];
  readonly sources: ReadonlyMap<string, Dataset>;
  readonly targets: ReadonlyMap<string, Dataset>;
}

/** How the pairs are sent: the command's flags, and whether diverged targets may be rolled back. */
export interface ReplicateHow {
  readonly select: (short: string) => boolean;
  readonly pull?: boolean;
  readonly jobs: number;
  readonly lockWait: number;
  readonly bwlimit?: number;
  readonly rollBack: boolean;
}

/**
 * Lists both ends side by side and pairs their datasets up; null when the source root does not
 * exist. The target datasets whose source is gone are warned about here.
 */
export async function gatherFacts(
  source: ReplicationEnd,
  target: ReplicationEnd,
  select: (short: string) => boolean,
  log: ReplicateLog,
): Promise<ReplicateFacts | null> {
  // One listing per side, side by side; the target root's own line says whether it exists.
  const [sourceList, targetList] = await Promise.all([
    // origin: a disk's later chain is a clone, and travels as one (replicate/clones.ts).
    source.zfs.list({ roots: [source.root], userProps: [METADATA_DIR_PROPERTY], withOrigin: true }),
    target.zfs.list({ roots: [target.root], userProps: [METADATA_DIR_PROPERTY] }),
  ]);
  if (sourceList.length === 0) return null;
  const targetRoot = targetList.find((d) => d.name === target.root);
  const { pairs, orphans } = mirrorPairs(source.root, sourceList, target.root, targetList, select);
  const targets = new Map(targetList.map((d) => [d.name, d]));
  const sources = new Map(sourceList.map((d) => [d.name, d]));
  for (const o of orphans)
    log.warn(
      `${target.host.name}:${o}: no longer on ${source.host.name} (guest deleted?): kept, never destroyed by zbm; ` +
        'destroy it yourself once its backups are no longer needed',
    );
  return { sourceList, targetRoot, pairs, orphans, sources, targets };
}

/** The targets that diverged from their source, as host:dataset: what --force-rollback rolls back. */
export function divergedTargets(
  facts: ReplicateFacts,
  source: ReplicationEnd,
  target: ReplicationEnd,
  select: (short: string) => boolean,
): string[] {
  const { pairs, targets } = facts;
  return pairs
    .filter(
      (p) =>
        planSync(
          { zfs: source.zfs, dataset: p.source.name, listing: p.source },
          { zfs: target.zfs, dataset: p.target, listing: targets.get(p.target) ?? null },
          select,
        ).kind === 'diverged',
    )
    .map((p) => `${target.host.name}:${p.target}`);
}

/** What a run did: each pair's result, and whether protecting the bases or copying the configs failed. */
export interface ReplicateOutcome {
  readonly results: DatasetResult[];
  readonly protectFailed: boolean;
  readonly metadataFailed: boolean;
}

/**
 * Sends every pair, --jobs at a time, under its dataset lock (new clones in later waves), then
 * protects the new common snapshots and copies the guest configs. A pair that fails or is skipped
 * does not stop the others; its result says so.
 */
export async function runReplication(
  facts: ReplicateFacts,
  source: ReplicationEnd,
  target: ReplicationEnd,
  how: ReplicateHow,
  log: ReplicateLog,
  progress: ReplicateProgress,
): Promise<ReplicateOutcome> {
  const { select } = how;
  const { pairs } = facts;
  let targets = facts.targets;
  // Against the target as last listed: the second wave sees the origins the first one sent.
  const cloneStart = (pair: MirrorPair) =>
    planCloneStart(pair, source.root, facts.sources, target.root, targets, select);
  if (facts.targetRoot === undefined) {
    log.info(`creating ${target.host.name}:${target.root}`);
    await target.zfs.create(target.root);
  }
  const limiter = how.bwlimit ? new RateLimiter(how.bwlimit) : undefined;
  // Each pair of hosts has its own tag, so two replicas of one server never release each other's base.
  const tag = holdTag(source.host.name, target.host.name);
  // --jobs streams at a time; in the order of the pairs, whatever order the transfers end in.
  const sendWave = (wave: readonly MirrorPair[]) =>
    sendEach(
      wave,
      {
        jobs: how.jobs,
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
        const lockName = how.pull ? targetName : d.name;
        const acquired = await acquire(
          datasetLockName(lockName),
          `replicate ${d.name}`,
          how.lockWait * 1000,
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
          if (how.rollBack && before) {
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
              receiveLock: !how.pull && { what: 'replicate', waitSeconds: how.lockWait },
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
    replicateMetadata(
      source,
      target,
      facts.sourceList,
      facts.targetRoot?.props[METADATA_DIR_PROPERTY],
      log,
    ).then((ok) => !ok),
  ]);
  return { results, protectFailed, metadataFailed };
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
  log: ReplicateLog,
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
