/**
 * The run of a prune: what the planner needs, read from zfs here and on the next tier; the plan of
 * every dataset; and the executor that destroys it under the dataset's locks, keeping what was held
 * since the listing; then the configs and manifests of the destroyed snapshots.
 */
import { DEFAULT_CLOCK_SKEW_SECONDS } from '../conventions/names.ts';
import { errorMessage } from '../errors.ts';
import { acquireAll, datasetLockName, describeHolder, describeWait, receiveLockName } from '../lock/lock.ts';
import { type GuestSnapshots, pruneMetadata } from '../metadata/remove.ts';
import { chooseMetadataDir, datasetsByGuest, METADATA_DIR_PROPERTY } from '../metadata/store.ts';
import type { TimeZone } from '../time/zone.ts';
import { joinDataset, relativeTo, splitSnapshot } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';
import {
  type DatasetPlan,
  type Kept,
  orderAnomalies,
  planDataset,
  type RemoteFacts,
  retentionFor,
} from './plan.ts';
import type { KeepRules } from './retention.ts';

/** What a prune reports as it goes; the command's logger is one. */
export interface PruneLog {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
}

/**
 * The whole of one argument handed to exec (`zfs destroy ds@a,b,...`) may not exceed
 * MAX_ARG_STRLEN (128 KiB on Linux), and all of them together ARG_MAX: long histories are split,
 * which a normal run never needs.
 */
const MAX_DESTROY_ARG = 100_000;
const MAX_HOLDS_ARGS = 1_000_000;

function chunked(items: readonly string[], maxChars: number): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let size = 0;
  for (const item of items) {
    if (cur.length > 0 && size + item.length + 1 > maxChars) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(item);
    size += item.length + 1;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Per dataset and short name, the values given for full snapshot names (appended when repeated). */
type PerSnapshot = Map<string, Map<string, string[]>>;

function addPerSnapshot(found: PerSnapshot, snapshot: string, values: readonly string[]): void {
  const { dataset: ds, snapshot: short } = splitSnapshot(snapshot);
  const perDs = found.get(ds) ?? new Map<string, string[]>();
  perDs.set(short, [...(perDs.get(short) ?? []), ...values]);
  found.set(ds, perDs);
}

/** Hold tags per dataset and short name, for the given snapshots: one `zfs holds` call (none for none). */
async function holdsOf(zfs: Zfs, names: readonly string[]): Promise<PerSnapshot> {
  const found: PerSnapshot = new Map();
  for (const part of chunked(names, MAX_HOLDS_ARGS)) {
    for (const h of await zfs.holds(part)) addPerSnapshot(found, h.snapshot, [h.tag]);
  }
  return found;
}

/** Clones per dataset and short name, of the snapshots that have any: one `zfs get -r` call. */
async function clonesOf(zfs: Zfs, root: string): Promise<PerSnapshot> {
  const found: PerSnapshot = new Map();
  for (const p of await zfs.get(['clones'], [root], true)) {
    if (p.name.includes('@') && p.value) addPerSnapshot(found, p.name, p.value.split(','));
  }
  return found;
}

export interface DatasetOutcome {
  readonly plan: DatasetPlan;
  readonly remoteDataset: string | null;
  destroyed: string[];
  /** Planned for destruction but found held at destroy time: kept. */
  heldLate: Kept[];
  error: string | null;
}

/** The next tier's datasets by name, why it could not be listed, or null without a next tier. */
export type RemoteListing = Map<string, Dataset> | { error: string } | null;

/** What this host saw, for the planner: its datasets, the next tier's, holds and clones. */
export interface PruneFacts {
  readonly datasets: readonly Dataset[];
  readonly root: Dataset;
  readonly remote: RemoteListing;
  readonly holds: PerSnapshot;
  readonly clones: PerSnapshot;
}

/** Where a prune looks: this host's root, and the next tier's when there is one. */
export interface PruneScope {
  readonly localZfsRoot: string;
  readonly prefix: string;
  /** The ssh destination of the next tier and the dataset there that mirrors localZfsRoot. */
  readonly remote?: { readonly host: string; readonly zfsRoot: string; readonly zfs: Zfs };
}

/** The listing first, then the next tier's listing, the holds and the clones at once; null when the root does not exist. */
export async function gatherFacts(localZfs: Zfs, scope: PruneScope): Promise<PruneFacts | null> {
  const datasets = await localZfs.list({ roots: [scope.localZfsRoot], userProps: [METADATA_DIR_PROPERTY] });
  const root = datasets.find((d) => d.name === scope.localZfsRoot);
  if (!root) return null;
  // userrefs counts the holds: only held snapshots need to be asked which tags hold them.
  const held = datasets.flatMap((d) =>
    d.snapshots.filter((s) => s.short.startsWith(scope.prefix) && s.userrefs > 0).map((s) => s.name),
  );

  const remoteListing = async (): Promise<RemoteListing> => {
    if (!scope.remote) return null;
    try {
      const list = await scope.remote.zfs.list({ roots: [scope.remote.zfsRoot] });
      return new Map(list.map((d) => [d.name, d]));
    } catch (err) {
      return { error: errorMessage(err) };
    }
  };
  const [remote, holds, clones] = await Promise.all([
    remoteListing(),
    holdsOf(localZfs, held),
    clonesOf(localZfs, scope.localZfsRoot),
  ]);
  return { datasets, root, remote, holds, clones };
}

/** Why the next tier could not be listed, or null. */
export function unreachableOf(remote: RemoteListing): string | null {
  return remote && 'error' in remote ? remote.error : null;
}

/** The plan of every dataset, from the facts alone; anomalies are reported as they are found. */
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
    const anomalies = orderAnomalies(d, scope.prefix, how.now, DEFAULT_CLOCK_SKEW_SECONDS);
    for (const a of anomalies) {
      log.warn(
        `${how.localName}:${d.name}@${a.short} is an anomaly: ${a.why}; it is kept and counts for no rule`,
      );
    }
    const plan = planDataset({
      dataset: d,
      prefix: scope.prefix,
      retention: retentionFor(d, scope.prefix, how.rules, how.zone, anomalies),
      holds: holds.get(d.name) ?? new Map(),
      clones: clones.get(d.name) ?? new Map(),
      remote: remoteFacts,
      anomalies,
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
