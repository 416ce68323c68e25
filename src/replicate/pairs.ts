import { joinDataset, relativeTo } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';

export interface MirrorPair {
  readonly source: Dataset;
  /** The same relative path under the target root. */
  readonly target: string;
}

/**
 * The 1:1 mapping of source datasets onto the target root (sorted by name), and the target
 * datasets whose source is gone (a deleted guest): those are reported and kept, never destroyed.
 * The source root itself travels only when it has snapshots to send. Pure.
 */
export function mirrorPairs(
  sourceRoot: string,
  sourceList: readonly Dataset[],
  targetRoot: string,
  targetList: readonly Dataset[],
  select: (short: string) => boolean,
): { pairs: MirrorPair[]; orphans: string[] } {
  const rels = new Set(sourceList.map((d) => relativeTo(sourceRoot, d.name) ?? ''));
  const pairs = sourceList
    .filter((d) => d.name !== sourceRoot || d.snapshots.some((s) => select(s.short)))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((d) => ({ source: d, target: joinDataset(targetRoot, relativeTo(sourceRoot, d.name) ?? '') }));
  const orphans = targetList
    .map((d) => ({ name: d.name, rel: relativeTo(targetRoot, d.name) }))
    .filter(({ rel }) => rel !== null && rel !== '' && !rels.has(rel))
    // A dataset under a reported orphan is gone with it: report the top one only.
    .filter(({ rel }, _i, all) => !all.some((o) => o.rel !== rel && rel?.startsWith(`${o.rel}/`)))
    .map(({ name }) => name)
    .sort();
  return { pairs, orphans };
}
