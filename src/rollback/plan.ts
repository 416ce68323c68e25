/**
 * `zbm prepare-rollback`: what zbm must take off a guest's datasets on this node before `qm
 * rollback` / `pct rollback` to one of its Proxmox snapshots can work (docs/proxmox.md). Proxmox
 * refuses a rollback unless the target is the newest snapshot of every disk (`zfs list -t snapshot
 * -s creation`), and `zfs rollback` without `-r` then also fails on a newer bookmark, after the guest
 * was stopped and locked. zbm's snapshots newer than the target go, so do zbm's bookmarks an earlier
 * version left; the newest zbm snapshot older than the target stays, the base a new chain beside
 * the backup server's old one starts from (plan/chain.ts), without sending the whole disk again.
 * A zbm snapshot goes only when the backup server was seen to hold it
 * (same guid): one it never received is a restore point that exists nowhere else, so the plan is
 * refused instead, unless forced. Pure.
 */
import { listSnapRefs, type SnapRef } from '../plan/diff.ts';
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
  /**
   * Of `destroy`, the ones the backup server does not have (only ever non-empty when forced): those
   * restore points are lost. null when the server was not looked at (forced without one).
   */
  readonly unreplicated: readonly string[] | null;
}

/** The backup server's copy of one node dataset, as listed there. */
export interface ServerCopy {
  /** Its name on the server (where backup-pve sends the node dataset). */
  readonly dataset: string;
  /** Its snapshots, oldest first; null when the server has no such dataset. */
  readonly snapshots: readonly SnapRef[] | null;
}

/** What the backup server was seen to hold: the copy of each of the guest's node datasets. */
export interface ServerView {
  /** The backup server, as ssh reaches it. */
  readonly host: string;
  /** By node dataset, every one of the guest's. */
  readonly copies: ReadonlyMap<string, ServerCopy>;
}

export interface RollbackRequest {
  readonly prefix: string;
  /** The Proxmox snapshot the guest is rolled back to; undefined: every zbm snapshot goes. */
  readonly snapshot: string | undefined;
  /** null: not looked at (no --remote). */
  readonly server: ServerView | null;
  /** Destroy zbm snapshots the server lacks, or without looking at it. */
  readonly force: boolean;
}

/** One node dataset whose zbm snapshots to destroy include some the backup server lacks. */
export interface UnreplicatedDataset {
  readonly dataset: string;
  readonly copy: string;
  /** The zbm snapshots that would go and that the server does not have (by guid). */
  readonly missing: readonly SnapRef[];
  /** Every zbm snapshot of the node dataset, oldest first. */
  readonly node: readonly SnapRef[];
  /** The server copy's snapshots; null when it has no copy. */
  readonly server: readonly SnapRef[] | null;
}

/** The plan would destroy restore points that exist nowhere else: nothing is done. */
export interface Refusal {
  readonly kind: 'unreplicated';
  readonly host: string;
  readonly datasets: readonly UnreplicatedDataset[];
}

/** The plan would destroy zbm snapshots, and nobody said which backup server should have them. */
export interface Unchecked {
  readonly kind: 'unchecked';
  /** Each node dataset with the zbm snapshots that would go. */
  readonly datasets: readonly { readonly dataset: string; readonly destroy: readonly string[] }[];
}

export type RollbackPlan =
  | {
      readonly kind: 'plan';
      readonly datasets: readonly DatasetRollbackPlan[];
      /** Datasets of the guest without the target snapshot: Proxmox leaves them as they are. */
      readonly untouched: readonly string[];
    }
  | Refusal
  | Unchecked
  | { readonly kind: 'error'; readonly error: string };

function snapRef(s: SnapRef): SnapRef {
  return { short: s.short, guid: s.guid, createtxg: s.createtxg, creation: s.creation };
}

export function planRollbackPreparation(datasets: readonly Dataset[], req: RollbackRequest): RollbackPlan {
  const { prefix, snapshot, server } = req;
  const ours = (short: string) => short.startsWith(prefix);
  if (snapshot !== undefined && ours(snapshot))
    return {
      kind: 'error',
      error: `${snapshot} is a zbm snapshot: roll back to a Proxmox snapshot of the guest (qm listsnapshot), or restore a backup with zbm restore`,
    };
  const plans: DatasetRollbackPlan[] = [];
  const untouched: string[] = [];
  const refused: UnreplicatedDataset[] = [];
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
    // A name proves nothing: only a snapshot with the same guid on the server is the same one.
    const copy = server?.copies.get(d.name) ?? null;
    const there = new Set(copy?.snapshots?.map((s) => s.guid) ?? []);
    const missing = server === null ? null : destroy.filter((s) => !there.has(s.guid));
    if (missing && missing.length > 0)
      refused.push({
        dataset: d.name,
        copy: copy?.dataset ?? '(no copy listed)',
        missing: missing.map(snapRef),
        node: snaps.filter((s) => ours(s.short)).map(snapRef),
        server: copy?.snapshots?.map(snapRef) ?? null,
      });
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
      unreplicated: missing?.map((s) => s.short) ?? null,
    });
  }
  if (snapshot !== undefined && plans.length === 0)
    return {
      kind: 'error',
      error: `no dataset of the guest has a snapshot ${snapshot}${datasets.length > 0 ? ` (looked at ${datasets.map((d) => d.name).join(', ')})` : ''}`,
    };
  if (!req.force) {
    if (server !== null && refused.length > 0)
      return { kind: 'unreplicated', host: server.host, datasets: refused };
    const unchecked = plans.filter((p) => p.destroy.length > 0);
    if (server === null && unchecked.length > 0)
      return {
        kind: 'unchecked',
        datasets: unchecked.map((p) => ({ dataset: p.dataset, destroy: p.destroy })),
      };
  }
  return { kind: 'plan', datasets: plans, untouched };
}

/** Both sides as found, and the ways out: what the administrator reads when the plan is refused. */
export function describeRefusal(r: Refusal | Unchecked, node: string, vmid: number): string {
  if (r.kind === 'unchecked')
    return [
      `nothing destroyed: the zbm snapshots below may be restore points the backup server never received, and prepare-rollback was not told which server to look at:`,
      ...r.datasets.map((d) => `  ${node}:${d.dataset}: ${d.destroy.join(', ')}`),
      `  Give the backup server as backup-pve does (--remote <host> --remote-zfs-root <dataset>), so that only the snapshots it has are destroyed; or --force to destroy them unchecked, losing any restore point that exists nowhere else.`,
    ].join('\n');
  return [
    `nothing destroyed: zbm snapshots the backup server ${r.host} does not have (compared by guid) would go, and they are restore points that exist nowhere else:`,
    ...r.datasets.flatMap((d) => [
      `  ${node}:${d.dataset}: ${listSnapRefs(d.missing)} not on ${r.host}:${d.copy}`,
      `    node's zbm snapshots: ${listSnapRefs(d.node)}`,
      `    server's snapshots: ${d.server === null ? `(${d.copy} does not exist on ${r.host})` : listSnapRefs(d.server)}`,
    ]),
    `  Let backup-pve send them to ${r.host} first (zbm backup-pve ... --vmid ${vmid}), then run this again; or add --force to destroy them anyway, losing those restore points.`,
  ].join('\n');
}
