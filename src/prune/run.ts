/**
 * The run of a prune, over what facts.ts gathered: the plan of every dataset; the executor that
 * destroys it under the dataset's locks, keeping what was held since the listing; then the configs
 * and manifests of the destroyed snapshots.
 */
import { DEFAULT_CLOCK_SKEW_SECONDS } from '../conventions/names.ts';
import { errorMessage } from '../errors.ts';
import { acquireAll, datasetLockName, describeHolder, describeWait, receiveLockName } from '../lock/lock.ts';
import { type GuestSnapshots, pruneMetadata } from '../metadata/remove.ts';
import { chooseMetadataDir, datasetsByGuest, METADATA_DIR_PROPERTY } from '../metadata/store.ts';
import type { TimeZone } from '../time/zone.ts';
import { joinDataset, relativeTo } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';
import {
  chunked,
  holdsOf,
  MAX_DESTROY_ARG,
  type PruneFacts,
  type PruneScope,
  unreachableOf,
} from './facts.ts';
import {
  type Anomaly,
  chainPlaces,
  type DatasetPlan,
  type Kept,
  orderAnomalies,
  planDataset,
  type RemoteFacts,
  retentionByDataset,
} from './plan.ts';
import type { KeepRules } from './retention.ts';

/** What a prune reports as it goes; the command's logger is one. */
export interface PruneLog {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
}

export interface DatasetOutcome {
  readonly plan: DatasetPlan;
  readonly remoteDataset: string | null;
  destroyed: string[];
  /** Planned for destruction but found held at destroy time: kept. */
  heldLate: Kept[];
  error: string | null;
}

export function planAll(
  facts: PruneFacts,
  scope: PruneScope,
  how: {
    readonly localName: string;
    readonly rules: KeepRules;
    readonly zone: TimeZone;
    readonly now: number;
  },
  log: PruneLog,
): DatasetOutcome[] {
  const { remote, holds, clones } = facts;
  const unreachable = unreachableOf(remote);
  if (remote && !('error' in remote) && !remote.has(scope.remote?.zfsRoot ?? '')) {
    log.warn(
      `${scope.remote?.host}:${scope.remote?.zfsRoot} does not exist, so nothing is pruned until replicate has copied the datasets there`,
    );
  }

  // Anomalies per dataset (createtxg orders only within one), then the rules per family of chains.
  const anomalies = new Map<string, Anomaly[]>();
  for (const d of facts.datasets) {
    const found = orderAnomalies(d, scope.prefix, how.now, DEFAULT_CLOCK_SKEW_SECONDS);
    for (const a of found) {
      log.warn(
        `${how.localName}:${d.name}@${a.short} is an anomaly: ${a.why}; it is kept and counts for no rule`,
      );
    }
    anomalies.set(d.name, found);
  }
  const retention = retentionByDataset(facts.datasets, scope.prefix, how.rules, how.zone, anomalies);
  const places = chainPlaces(facts.datasets, scope.prefix);

  const outcomes: DatasetOutcome[] = [];
  for (const d of facts.datasets) {
    const rel = relativeTo(scope.localZfsRoot, d.name) ?? '';
    let remoteFacts: RemoteFacts | undefined;
    let remoteDataset: string | null = null;
    if (scope.remote !== undefined) {
      remoteDataset = joinDataset(scope.remote.zfsRoot, rel);
      remoteFacts =
        remote && !('error' in remote)
          ? {
              kind: 'listed',
              remote: scope.remote.host,
              dataset: remoteDataset,
              snapshots: remote.get(remoteDataset)?.snapshots ?? null,
            }
          : { kind: 'unreachable', remote: scope.remote.host, error: unreachable ?? 'not listed' };
    }
    const own = retention.get(d.name);
    // retentionByDataset covers every dataset; a missing one must never read as "nothing kept".
    if (own === undefined) throw new Error(`prune: no retention computed for ${d.name} (a bug in zbm)`);
    const family = places.get(d.name);
    const plan = planDataset({
      dataset: d,
      prefix: scope.prefix,
      retention: own,
      holds: holds.get(d.name) ?? new Map(),
      clones: clones.get(d.name) ?? new Map(),
      remote: remoteFacts,
      anomalies: anomalies.get(d.name) ?? [],
      ...(family === undefined ? {} : { family }),
    });
    outcomes.push({ plan, remoteDataset, destroyed: [], heldLate: [], error: null });
  }
  return outcomes;
}

/**
 * Destroys the plan of one dataset, in one `zfs destroy ds@a,b,c` (atomic: all or none). A
 * snapshot held between the listing and the destroy fails the whole call with "dataset is busy":
 * then the holds are read again, the newly held ones are kept and reported, and the rest retried.
 */
async function destroyPlanned(zfs: Zfs, o: DatasetOutcome): Promise<void> {
  const ds = o.plan.dataset;
  for (const part of chunked(o.plan.destroy, MAX_DESTROY_ARG)) {
    try {
      await zfs.destroySnapshots(ds, part);
      o.destroyed.push(...part);
    } catch (err) {
      const held = await holdsOf(
        zfs,
        part.map((s) => `${ds}@${s}`),
      ).catch(() => null);
      const tags = held?.get(ds) ?? new Map<string, string[]>();
      if (tags.size === 0) throw err;
      for (const [short, t] of tags) {
        o.heldLate.push({ short, why: `held by ${t.join(', ')}`, reasons: [{ kind: 'held', tags: t }] });
      }
      const rest = part.filter((s) => !tags.has(s));
      await zfs.destroySnapshots(ds, rest);
      o.destroyed.push(...rest);
    }
  }
}

/** Destroys every dataset's plan, one dataset at a time under its locks; a failure is recorded in its outcome. */
export async function destroyAll(
  localZfs: Zfs,
  outcomes: readonly DatasetOutcome[],
  lockWaitMs: number,
  log: PruneLog,
): Promise<void> {
  const localName = localZfs.host.name;
  for (const o of outcomes) {
    if (o.plan.destroy.length === 0) continue;
    // replicate holds the first while it sends, a receive from any host the second: a base is
    // then never destroyed under a transfer. A transfer that ended since the listing only made
    // the plan more careful than needed.
    const acquired = await acquireAll(
      [datasetLockName(o.plan.dataset), receiveLockName(o.plan.dataset)],
      `prune ${o.plan.dataset}`,
      lockWaitMs,
      (holder, ms) => log.info(describeWait(`${localName}:${o.plan.dataset}`, holder, ms)),
    );
    if ('heldBy' in acquired) {
      o.error = `skipped: ${describeHolder(acquired.heldBy)} is working on it; nothing destroyed, the next prune will`;
      log.warn(`${localName}:${o.plan.dataset}: ${o.error}`);
      continue;
    }
    try {
      await destroyPlanned(localZfs, o);
    } catch (err) {
      o.error = errorMessage(err);
      log.error(`destroying old snapshots of ${o.plan.dataset}: ${o.error}`);
    } finally {
      acquired.lock.release();
    }
  }
}

/** The snapshot names left per guest after the run, and those it destroyed, for metadata pruning. */
function guestSnapshots(
  datasets: readonly Dataset[],
  outcomes: ReadonlyMap<string, DatasetOutcome>,
): Map<number, GuestSnapshots> {
  const guests = new Map<number, GuestSnapshots>();
  for (const [vmid, own] of datasetsByGuest(datasets)) {
    const g = { remaining: new Set<string>(), destroyed: new Set<string>() };
    for (const d of own) {
      const gone = new Set(outcomes.get(d.name)?.destroyed ?? []);
      for (const s of d.snapshots) (gone.has(s.short) ? g.destroyed : g.remaining).add(s.short);
    }
    guests.set(vmid, g);
  }
  return guests;
}

export interface MetadataOutcome {
  readonly dir: string;
  readonly removed: string[];
  readonly errors: string[];
}

/**
 * After a destroying run, removes the configs and manifests of the destroyed snapshots from the
 * metadata dir (the one given, or the one the root's property names); null when nothing was pruned.
 */
export async function pruneMetadataAfter(
  facts: PruneFacts,
  outcomes: readonly DatasetOutcome[],
  how: {
    readonly metadataDir: string | undefined;
    readonly localZfsRoot: string;
    readonly prefix: string;
    readonly destroying: boolean;
    readonly now: number;
  },
  log: PruneLog,
): Promise<MetadataOutcome | null> {
  const { root } = facts;
  let metadata: MetadataOutcome | null = null;
  const place = chooseMetadataDir(
    how.metadataDir,
    root.props[METADATA_DIR_PROPERTY],
    how.localZfsRoot,
    '--local-metadata-dir',
  );
  if ('warning' in place && place.warning) log.warn(place.warning);
  if (how.destroying && 'dir' in place) {
    const byName = new Map(outcomes.map((o) => [o.plan.dataset, o]));
    const r = await pruneMetadata(
      place.dir,
      how.prefix,
      guestSnapshots(facts.datasets, byName),
      how.now + DEFAULT_CLOCK_SKEW_SECONDS,
    );
    metadata = { dir: place.dir, ...r };
    for (const e of r.errors) log.error(`pruning configs and manifests: ${e}`);
    if (r.removed.length > 0)
      log.info(`removed ${r.removed.length} config/manifest file(s) from ${place.dir}`);
  } else if (how.destroying && 'error' in place && root.props[METADATA_DIR_PROPERTY] !== undefined) {
    log.warn(`${place.error}: configs left as they are`);
  }
  return metadata;
}
