import type { Dataset } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';

/** The hold tag of one source→target pair: a second target never releases the first one's base. */
export function holdTag(sourceHost: string, targetHost: string): string {
  return `zbm-base:${sourceHost}:${targetHost}`;
}

/** One dataset whose transfer succeeded: its new common snapshot is to be protected. */
export interface BasePair {
  /** The source dataset as listed after its snapshot was taken. */
  readonly source: Dataset;
  readonly target: string;
  /** The target as listed before the transfer (null when it did not exist). */
  readonly targetBefore: Dataset | null;
  readonly common: string;
}

/** Snapshots that may carry our hold: the new base, and the old ones that have any hold at all. */
function candidates(d: Dataset | null, name: string, common: string): string[] {
  const held = (d?.snapshots ?? []).filter((s) => s.userrefs > 0 && s.short !== common).map((s) => s.name);
  return [`${name}@${common}`, ...held];
}

async function moveHold(
  zfs: Zfs,
  tag: string,
  wanted: readonly string[],
  maybeHeld: readonly string[],
): Promise<void> {
  const current = new Set((await zfs.holds(maybeHeld)).filter((h) => h.tag === tag).map((h) => h.snapshot));
  // Hold first, release after: there is never a moment without a protected base.
  await zfs.hold(
    tag,
    wanted.filter((s) => !current.has(s)),
  );
  const keep = new Set(wanted);
  await zfs.release(
    tag,
    [...current].filter((s) => !keep.has(s)),
  );
}

/**
 * Protects the newest common snapshot of each source→target pair against `zfs destroy` on both
 * sides: a hold with the pair's tag on each side and a bookmark on the source (an increment can
 * still start from it if the snapshot is lost). The pair's previous holds and bookmarks are
 * released afterwards. A constant number of zfs calls per side, whatever the number of datasets,
 * plus one per new bookmark.
 */
export async function protectBases(
  sourceZfs: Zfs,
  targetZfs: Zfs,
  tag: string,
  pairs: readonly BasePair[],
  ours: (short: string) => boolean,
): Promise<void> {
  if (pairs.length === 0) return;
  const srcCandidates = pairs.flatMap((p) => candidates(p.source, p.source.name, p.common));
  // A target that did not exist before has only the new base as a candidate.
  const dstCandidates = pairs.flatMap((p) => candidates(p.targetBefore, p.target, p.common));
  await Promise.all([
    moveHold(
      sourceZfs,
      tag,
      pairs.map((p) => `${p.source.name}@${p.common}`),
      srcCandidates,
    ),
    moveHold(
      targetZfs,
      tag,
      pairs.map((p) => `${p.target}@${p.common}`),
      dstCandidates,
    ),
  ]);
  await Promise.all(
    pairs.flatMap((p) => [
      ...(p.source.bookmarks.some((b) => b.short === p.common)
        ? []
        : [sourceZfs.bookmark(`${p.source.name}@${p.common}`, `${p.source.name}#${p.common}`)]),
      ...p.source.bookmarks
        .filter((b) => ours(b.short) && b.short !== p.common)
        .map((b) => sourceZfs.destroyBookmark(b.name)),
    ]),
  );
}
