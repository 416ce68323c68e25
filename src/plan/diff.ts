/**
 * Replication planning for one dataset, as one pure function from the two sides' snapshot lists
 * to either the steps to send or a typed conflict (after zrepl's diff). Identity is the guid:
 * a snapshot with the same name but another guid is a different snapshot.
 */

export interface SnapRef {
  readonly short: string;
  readonly guid: string;
  readonly createtxg: number;
  readonly creation: number;
}

/** A send step: a full stream of `to`, or the increment from `from` (a snapshot or bookmark) to `to`. */
export interface Step {
  /** dataset: the base lives in another dataset, the origin of the clone being sent (its first step). */
  readonly from: { readonly short: string; readonly bookmark: boolean; readonly dataset?: string } | null;
  readonly to: SnapRef;
}

export interface SourceSide {
  /** Candidate snapshots to send, oldest first (already filtered by prefix where that applies). */
  readonly snapshots: readonly SnapRef[];
  /** Bookmarks: they can be the base of an increment when their snapshot is gone. */
  readonly bookmarks: readonly SnapRef[];
}

export interface TargetSide {
  /** All snapshots of the target dataset, oldest first; null when the dataset does not exist. */
  readonly snapshots: readonly SnapRef[] | null;
  /** Bytes written to the target since its newest snapshot (`written`). */
  readonly written: number;
}

export type Diff =
  | { readonly kind: 'full'; readonly steps: readonly Step[] }
  | { readonly kind: 'incremental'; readonly common: SnapRef; readonly steps: readonly Step[] }
  | { readonly kind: 'up-to-date'; readonly common: SnapRef }
  | Conflict;

export type Conflict =
  | { readonly kind: 'nothing-to-send' }
  | {
      readonly kind: 'no-common-snapshot';
      readonly source: readonly SnapRef[];
      readonly target: readonly SnapRef[];
    }
  | {
      readonly kind: 'diverged';
      readonly common: SnapRef;
      /** Target snapshots after the common one: the source never had them. */
      readonly extra: readonly SnapRef[];
      readonly written: number;
      readonly source: readonly SnapRef[];
      readonly target: readonly SnapRef[];
    };

/** Steps from `from` through each of snaps in turn, one `-i` each. */
export function chain(from: Step['from'], snaps: readonly SnapRef[]): Step[] {
  const steps: Step[] = [];
  let prev = from;
  for (const s of snaps) {
    steps.push({ from: prev, to: s });
    prev = { short: s.short, bookmark: false };
  }
  return steps;
}

/**
 * Plans the transfer of every source snapshot the target lacks. The steps go snapshot by snapshot
 * (`-i`), so that only the given snapshots travel, never other snapshots in between.
 */
export function diff(source: SourceSide, target: TargetSide): Diff {
  const src = source.snapshots;
  if (target.snapshots === null) {
    return src.length === 0 ? { kind: 'nothing-to-send' } : { kind: 'full', steps: chain(null, src) };
  }
  const tgt = target.snapshots;
  const onTarget = new Map(tgt.map((s, i) => [s.guid, i]));

  // The newest source snapshot or bookmark that the target has, by guid.
  let common: { ref: SnapRef; bookmark: boolean } | null = null;
  for (const s of src) if (onTarget.has(s.guid)) common = { ref: s, bookmark: false };
  for (const b of source.bookmarks) {
    if (onTarget.has(b.guid) && (!common || b.createtxg > common.ref.createtxg))
      common = { ref: b, bookmark: true };
  }
  if (!common) return { kind: 'no-common-snapshot', source: src, target: tgt };

  const targetIndex = onTarget.get(common.ref.guid) ?? -1;
  const extra = tgt.slice(targetIndex + 1);
  if (extra.length > 0 || target.written > 0) {
    return { kind: 'diverged', common: common.ref, extra, written: target.written, source: src, target: tgt };
  }
  const newer = src.filter((s) => s.createtxg > common.ref.createtxg);
  if (newer.length === 0) return { kind: 'up-to-date', common: common.ref };
  return {
    kind: 'incremental',
    common: common.ref,
    steps: chain({ short: common.ref.short, bookmark: common.bookmark }, newer),
  };
}

/** Snapshots as an administrator compares two sides: name and guid, oldest first. */
export function listSnapRefs(snaps: readonly SnapRef[]): string {
  if (snaps.length === 0) return '(none)';
  return snaps.map((s) => `${s.short} (guid ${s.guid})`).join(', ');
}

/** A dataset as a message names it: on which host. Only names, nothing to run a command with. */
export interface DatasetOnHost {
  readonly host: string;
  readonly dataset: string;
}

/** What an administrator reads: the state found on both sides and the way out. */
export function describeConflict(
  c: Conflict,
  sourceSide: DatasetOnHost,
  targetSide: DatasetOnHost,
  /** How this command rolls a diverged target back, when it can (replicate's --force-rollback). */
  rollbackOption?: string,
): string {
  const sourceName = `${sourceSide.host}:${sourceSide.dataset}`;
  const targetName = `${targetSide.host}:${targetSide.dataset}`;
  const rollback = `zfs rollback -r ${targetSide.dataset}@${'common' in c ? c.common.short : ''}`;
  switch (c.kind) {
    case 'nothing-to-send':
      return `${sourceName} has no snapshot to send`;
    case 'no-common-snapshot':
      return [
        `${targetName} exists but has no snapshot in common with ${sourceName} (compared by guid), so nothing can be sent incrementally.`,
        `  source snapshots: ${listSnapRefs(c.source)}`,
        `  target snapshots: ${listSnapRefs(c.target)}`,
        `  zbm does not overwrite it. Rename or destroy ${targetSide.dataset} on ${targetSide.host} yourself if it is not needed, and the next run sends a full copy.`,
      ].join('\n');
    case 'diverged': {
      const what = [
        c.extra.length > 0
          ? `snapshots the source never had after the common one: ${listSnapRefs(c.extra)}`
          : '',
        c.written > 0 ? `${c.written} bytes written since its newest snapshot` : '',
      ]
        .filter(Boolean)
        .join('; and ');
      return [
        `${targetName} has diverged from ${sourceName}: ${what}.`,
        `  newest common snapshot: ${c.common.short} (guid ${c.common.guid})`,
        `  source snapshots: ${listSnapRefs(c.source)}`,
        `  target snapshots: ${listSnapRefs(c.target)}`,
        `  zbm left it untouched. To discard the target's changes, roll it back to the common snapshot: ` +
          (rollbackOption
            ? `run again with ${rollbackOption}, or ${rollback} on ${targetSide.host}`
            : `${rollback} on ${targetSide.host}`),
      ].join('\n');
    }
  }
}
