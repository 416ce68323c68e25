/**
 * `zbm prepare-rollback`: what zbm must take off a guest's datasets on this node before `qm
 * rollback` / `pct rollback` to one of its Proxmox snapshots can work (docs/proxmox.md). Proxmox
 * refuses a rollback unless the target is the newest snapshot of every disk (`zfs list -t snapshot
 * -s creation`), and `zfs rollback` without `-r` then also fails on a newer bookmark, after the guest
 * was stopped and locked. zbm's snapshots newer than the target go, so do zbm's bookmarks an earlier
 * version left; the newest zbm snapshot older than the target stays, the base a new chain beside
 * the backup server's old one can start from (not built yet: until then the guest's next backups
 * are refused as diverged). Pure.
 */
import type { Dataset } from '../zfs/types.ts';

export interface DatasetRollbackPlan {
  readonly dataset: string;
  /** zbm's snapshots newer than the target (all of them without a target), oldest first. */
  readonly destroy: readonly string[];
  /** Of those, the ones that carry a hold (an earlier zbm held its base on the node). */
  readonly held: readonly string[];
  /** zbm's bookmarks newer than the target (all without one), full names. */
  readonly bookmarks: readonly string[];
  /** The newest zbm snapshot older than the target: kept, the base a new chain beside the old one would start from. */
  readonly anchor: string | null;
  /** Other snapshots newer than the target: Proxmox still refuses the rollback until they go. */
  readonly blockers: readonly string[];
  /** Bookmarks of other tools newer than the target: zfs rollback would fail on them. */
  readonly foreignBookmarks: readonly string[];
}

export type RollbackPlan =
  | {
      readonly datasets: readonly DatasetRollbackPlan[];
      /** Datasets of the guest without the target snapshot: Proxmox leaves them as they are. */
      readonly untouched: readonly string[];
    }
  | { readonly error: string };

export function planRollbackPreparation(
  datasets: readonly Dataset[],
  prefix: string,
  snapshot: string | undefined,
): RollbackPlan {
  const ours = (short: string) => short.startsWith(prefix);
  if (snapshot !== undefined && ours(snapshot))
    return {
      error: `${snapshot} is a zbm snapshot: roll back to a Proxmox snapshot of the guest (qm listsnapshot), or restore a backup with zbm restore`,
    };
  const plans: DatasetRollbackPlan[] = [];
  const untouched: string[] = [];
  for (const d of datasets) {
    const target = snapshot === undefined ? null : d.snapshots.find((s) => s.short === snapshot);
    if (snapshot !== undefined && !target) {
      untouched.push(d.name);
      continue;
    }
    const after = target?.createtxg ?? Number.NEGATIVE_INFINITY;
    const snaps = [...d.snapshots].sort((a, b) => a.createtxg - b.createtxg);
    const newer = snaps.filter((s) => s.createtxg > after);
    const destroy = newer.filter((s) => ours(s.short));
    const older = snaps.filter((s) => s.createtxg < after && ours(s.short));
    const marks = d.bookmarks.filter((b) => b.createtxg > after);
    plans.push({
      dataset: d.name,
      destroy: destroy.map((s) => s.short),
      held: destroy.filter((s) => s.userrefs > 0).map((s) => s.name),
      bookmarks: marks.filter((b) => ours(b.short)).map((b) => b.name),
      anchor: target ? (older.at(-1)?.short ?? null) : null,
      // pvesr's snapshots Proxmox destroys itself when the guest has replication jobs.
      blockers: newer
        .filter((s) => !ours(s.short) && !s.short.startsWith('__replicate_'))
        .map((s) => s.short),
      foreignBookmarks: marks.filter((b) => !ours(b.short)).map((b) => b.name),
    });
  }
  if (snapshot !== undefined && plans.length === 0)
    return {
      error: `no dataset of the guest has a snapshot ${snapshot}${datasets.length > 0 ? ` (looked at ${datasets.map((d) => d.name).join(', ')})` : ''}`,
    };
  return { datasets: plans, untouched };
}
