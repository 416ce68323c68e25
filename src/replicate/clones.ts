/**
 * A dataset that is a clone of a snapshot under the same root (a disk's later chain, plan/chain.ts)
 * travels as a clone: its first snapshot as the increment from its origin, received as a clone of
 * the copy of that origin on the target, so the replica holds what the source holds and not a
 * second full copy of the disk. Pure.
 */
import { chain, type Step } from '../plan/diff.ts';
import { joinDataset, relativeTo, splitSnapshot } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import type { MirrorPair } from './pairs.ts';

export interface CloneStart {
  /** The origin's copy on the target (`<dataset>@<short>`, found by guid): `zfs receive -o origin=`. */
  readonly origin: string;
  readonly steps: readonly Step[];
}

/**
 * Whether the pair is a clone, new on the target, whose origin lies under the source root: it
 * waits until the other datasets are sent, so that its origin is on the target when it goes.
 */
export function isNewClone(
  pair: MirrorPair,
  sourceRoot: string,
  targets: ReadonlyMap<string, Dataset>,
): boolean {
  const origin = pair.source.origin;
  if (origin === null || targets.has(pair.target)) return false;
  return relativeTo(sourceRoot, splitSnapshot(origin).dataset) !== null;
}

/**
 * How a new clone starts on the target: from its origin's copy there, which must hold the origin
 * by guid (a name alone could be another snapshot). Null when it cannot: it is then sent whole.
 */
export function planCloneStart(
  pair: MirrorPair,
  sourceRoot: string,
  sources: ReadonlyMap<string, Dataset>,
  targetRoot: string,
  targets: ReadonlyMap<string, Dataset>,
  select: (short: string) => boolean,
): CloneStart | null {
  const origin = pair.source.origin;
  if (origin === null || targets.has(pair.target)) return null;
  const { dataset, snapshot: short } = splitSnapshot(origin);
  const rel = relativeTo(sourceRoot, dataset);
  if (rel === null) return null;
  const guid = sources.get(dataset)?.snapshots.find((s) => s.short === short)?.guid;
  const copy = joinDataset(targetRoot, rel);
  const there = targets.get(copy)?.snapshots.find((s) => s.guid === guid);
  const snapshots = pair.source.snapshots.filter((s) => select(s.short));
  if (guid === undefined || !there || snapshots.length === 0) return null;
  return {
    origin: `${copy}@${there.short}`,
    steps: chain({ short, bookmark: false, dataset }, snapshots),
  };
}

/**
 * The pairs in the order their origins need: first every pair that is no new clone, then the new
 * clones whose origin is already on the target or goes in an earlier wave (a linked clone after
 * its template, itself a clone of a disk's chain). Pure.
 */
export function cloneWaves(
  pairs: readonly MirrorPair[],
  sourceRoot: string,
  targets: ReadonlyMap<string, Dataset>,
): MirrorPair[][] {
  const bySource = new Map(pairs.map((p) => [p.source.name, p]));
  const depth = new Map<MirrorPair, number>();
  const depthOf = (p: MirrorPair, seen: Set<MirrorPair>): number => {
    const known = depth.get(p);
    if (known !== undefined) return known;
    let d = 0;
    if (isNewClone(p, sourceRoot, targets) && !seen.has(p)) {
      const parent = bySource.get(splitSnapshot(p.source.origin ?? '').dataset);
      d = 1 + (parent ? depthOf(parent, new Set([...seen, p])) : 0);
    }
    depth.set(p, d);
    return d;
  };
  const waves: MirrorPair[][] = [];
  for (const p of pairs) {
    const d = depthOf(p, new Set());
    while (waves.length <= d) waves.push([]);
    waves[d]?.push(p);
  }
  return waves.filter((w) => w.length > 0);
}
