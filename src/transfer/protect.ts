import { forEachLimited } from '../concurrency.ts';
import { errorMessage } from '../errors.ts';
import type { Dataset, Hold } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';

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

/**
 * Moves tag onto exactly the snapshots of wanted among those that may carry it (maybeHeld and
 * wanted): one `zfs holds`, then the hold and the release in one command (Zfs.moveHold), each only
 * when there is something to ask or change. Hold first, release after, so that a protected snapshot
 * is never without its hold.
 * known: the holds of maybeHeld, looked up earlier (the snapshots of wanted not in maybeHeld had
 * none then): the `zfs holds` is skipped. Should they have changed since, the hold or the release
 * fails, and the caller tries again without them.
 */
export async function moveHold(
  zfs: Zfs,
  tag: string,
  wanted: readonly string[],
  maybeHeld: readonly string[],
  known?: readonly Hold[],
): Promise<void> {
  const asked = [...new Set([...maybeHeld, ...wanted])];
  const holds = known ?? (await zfs.holds(asked));
  const mayCarry = new Set(asked);
  const current = new Set(
    holds.filter((h) => h.tag === tag && mayCarry.has(h.snapshot)).map((h) => h.snapshot),
  );
  const keep = new Set(wanted);
  await zfs.moveHold(
    tag,
    wanted.filter((s) => !current.has(s)),
    [...current].filter((s) => !keep.has(s)),
  );
}

/**
 * Moves the pairs' hold to their new common snapshot on both sides: one `zfs holds`, one `zfs hold`
 * and one `zfs release` per side, whatever the number of pairs. Idempotent: a second call after a
 * partial failure only does what is left.
 */
export async function moveHolds(
  sourceZfs: Zfs,
  targetZfs: Zfs,
  tag: string,
  pairs: readonly BasePair[],
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
}

/** What bookmarkBases does to one pair's source: pure, from the listing taken after the snapshot. */
export function bookmarkPlan(
  pair: BasePair,
  ours: (short: string) => boolean,
): { create: { snapshot: string; bookmark: string } | null; destroy: string[] } {
  const { source, common } = pair;
  return {
    create: source.bookmarks.some((b) => b.short === common)
      ? null
      : { snapshot: `${source.name}@${common}`, bookmark: `${source.name}#${common}` },
    destroy: source.bookmarks.filter((b) => ours(b.short) && b.short !== common).map((b) => b.name),
  };
}

/**
 * `zfs destroy` takes one bookmark per call: a few at a time, not hundreds of processes at once.
 * Both the bookmarks replaced here and the ones backup-pve clears from a node go by this limit.
 */
export const BOOKMARK_CONCURRENCY = 4;

/**
 * Bookmarks each pair's new base on the source (an increment can still start from it if the
 * snapshot is lost), all in one channel program per pool, then destroys the pair's older zbm
 * bookmarks: only after its new one exists, so a dataset never has fewer than one. Never throws:
 * returns the error of each pair that failed, by index, so that one dataset's failure stays its own.
 */
export async function bookmarkBases(
  sourceZfs: Zfs,
  pairs: readonly BasePair[],
  ours: (short: string) => boolean,
  onFallback?: (message: string) => void,
): Promise<Map<number, string>> {
  const errors = new Map<number, string>();
  const plans = pairs.map((p) => bookmarkPlan(p, ours));
  const creating = plans.flatMap((plan, i) => (plan.create ? [{ i, create: plan.create }] : []));
  const made = await sourceZfs.batch(
    creating.map(({ create }) => ({ kind: 'bookmark', ...create })),
    onFallback,
  );
  for (const [k, { i }] of creating.entries()) {
    const outcome = made[k];
    if (outcome && !outcome.ok) errors.set(i, outcome.error);
  }

  await forEachLimited(plans, BOOKMARK_CONCURRENCY, async (plan, i) => {
    if (errors.has(i)) return;
    try {
      for (const b of plan.destroy) await sourceZfs.destroyBookmark(b);
    } catch (err) {
      errors.set(i, errorMessage(err));
    }
  });
  return errors;
}

/**
 * Protects the newest common snapshot of each source→target pair against `zfs destroy` on both
 * sides: a hold with the pair's tag on each side (moveHolds) and a bookmark on the source
 * (bookmarkBases), the two at once. A constant number of zfs calls per side for the holds and the
 * new bookmarks, whatever the number of datasets, plus one per bookmark replaced. Throws on any
 * failure, once both are done.
 */
export async function protectBases(
  sourceZfs: Zfs,
  targetZfs: Zfs,
  tag: string,
  pairs: readonly BasePair[],
  ours: (short: string) => boolean,
  onFallback?: (message: string) => void,
): Promise<void> {
  if (pairs.length === 0) return;
  // Side by side: a bookmark protects nothing a hold does, and the older bookmarks go only once the
  // new one exists, whatever became of the holds.
  const [held, bookmarked] = await Promise.allSettled([
    moveHolds(sourceZfs, targetZfs, tag, pairs),
    bookmarkBases(sourceZfs, pairs, ours, onFallback),
  ]);
  if (held.status === 'rejected') throw held.reason;
  if (bookmarked.status === 'rejected') throw bookmarked.reason;
  const errors = bookmarked.value;
  if (errors.size > 0) {
    throw new Error([...errors].map(([i, e]) => `${pairs[i]?.source.name}: ${e}`).join('; '));
  }
}
