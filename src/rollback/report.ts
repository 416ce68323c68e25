/**
 * What prepare-rollback prints on stdout: the plan per dataset, the JSON of a refusal or a run, and
 * the closing line that says whether `qm rollback` / `pct rollback` can go now.
 */
import type { GuestType } from '../pve/vmlist.ts';
import type { DatasetRollbackPlan, Refusal, RollbackPlan, ServerView, Unchecked } from './plan.ts';

/** What prepare-rollback did on one dataset. */
export interface DatasetDone {
  readonly dataset: string;
  readonly destroyed: string[];
  readonly bookmarks: string[];
  error: string | null;
}

/** The guest and the target the answer is about. */
export interface RollbackHead {
  readonly vmid: number;
  readonly node: string;
  readonly snapshot: string | undefined;
}

function describe(p: DatasetRollbackPlan, snapshot: string | undefined, server: ServerView | null): string[] {
  const lines = [`${p.dataset}:`];
  if (p.destroy.length === 0 && p.bookmarks.length === 0) lines.push('  nothing of zbm in the way');
  if (p.destroy.length > 0) {
    lines.push(`  destroy zbm snapshot(s) ${p.destroy.join(', ')}`);
    const where = `${server?.host}:${server?.copies.get(p.dataset)?.dataset}`;
    if (p.unreplicated === null)
      lines.push('  not checked against a backup server (--force): any of them only this node has is lost');
    else if (p.unreplicated.length > 0)
      lines.push(`  ${p.unreplicated.join(', ')} not on ${where}: lost (--force)`);
    else lines.push(`  each of them is on ${where} (same guid)`);
  }
  if (p.bookmarks.length > 0) lines.push(`  destroy zbm bookmark(s) ${p.bookmarks.join(', ')}`);
  if (snapshot !== undefined)
    lines.push(
      p.anchor ? `  keep ${p.anchor} (older than ${snapshot})` : `  no zbm snapshot older than ${snapshot}`,
    );
  if (p.blockers.length > 0)
    lines.push(
      `  Proxmox will still refuse: snapshot(s) ${p.blockers.join(', ')} are newer than ${snapshot}; delete them first (qm delsnapshot / pct delsnapshot)`,
    );
  if (p.foreignBookmarks.length > 0)
    lines.push(
      `  zfs rollback would fail after Proxmox stopped the guest: bookmark(s) ${p.foreignBookmarks.join(', ')} of another tool are newer than ${snapshot}; destroy them first`,
    );
  return lines;
}

/** A refusal as JSON (--json); its message goes to the log. */
export function printRefusal(
  head: RollbackHead,
  refusal: Refusal | Unchecked,
  out: (s: string) => void,
): void {
  out(
    `${JSON.stringify({ vmid: head.vmid, node: head.node, snapshot: head.snapshot ?? null, mode: 'refused', refusal }, null, 2)}\n`,
  );
}

/** The plan, dataset by dataset, before anything is destroyed. */
export function printPlan(
  head: RollbackHead,
  plan: Extract<RollbackPlan, { kind: 'plan' }>,
  server: ServerView | null,
  out: (s: string) => void,
): void {
  out(
    `guest ${head.vmid} on ${head.node}: ${head.snapshot === undefined ? "zbm's snapshots and bookmarks" : `what zbm has newer than ${head.snapshot}`}\n`,
  );
  for (const p of plan.datasets) for (const l of describe(p, head.snapshot, server)) out(`${l}\n`);
  for (const u of plan.untouched) out(`${u}: has no snapshot ${head.snapshot}; left as it is\n`);
}

/** The plan and what was done (--json). */
export function printJson(
  head: RollbackHead,
  plan: Extract<RollbackPlan, { kind: 'plan' }>,
  done: readonly DatasetDone[],
  destroyed: boolean,
  out: (s: string) => void,
): void {
  out(
    `${JSON.stringify(
      {
        vmid: head.vmid,
        node: head.node,
        snapshot: head.snapshot ?? null,
        mode: destroyed ? 'destroy' : 'dry-run',
        datasets: plan.datasets.map((p) => ({
          ...p,
          destroyed: done.find((r) => r.dataset === p.dataset)?.destroyed ?? [],
          error: done.find((r) => r.dataset === p.dataset)?.error ?? null,
        })),
        untouched: plan.untouched,
      },
      null,
      2,
    )}\n`,
  );
}

/** After a run that destroyed without failing: whether the rollback can go now. */
export function printCleared(
  head: RollbackHead,
  type: GuestType,
  blocked: boolean,
  out: (s: string) => void,
): void {
  const cmd = type === 'qemu' ? 'qm' : 'pct';
  const target = head.snapshot === undefined ? '' : ` ${head.snapshot}`;
  out(
    head.snapshot === undefined
      ? `zbm's snapshots and bookmarks of guest ${head.vmid} are gone from ${head.node}\n`
      : blocked
        ? `zbm is out of the way; ${cmd} rollback ${head.vmid}${target} still needs the other snapshots above gone\n`
        : `zbm is out of the way: ${cmd} rollback ${head.vmid}${target}\n`,
  );
}
