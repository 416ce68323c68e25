/**
 * zbm status as pure functions: the backups under a root grouped per guest (by the VMID in PVE's
 * volume names), and their table.
 */

import { families } from '../conventions/names.ts';
import { vmidOf } from '../metadata/store.ts';
import { formatAge, formatBytes } from '../text/human.ts';
import type { Dataset } from '../zfs/types.ts';

export interface GuestStatus {
  /** null for a dataset that is no PVE volume: it gets a row of its own. */
  readonly vmid: number | null;
  readonly name: string;
  readonly disks: readonly string[];
  readonly newest: string | null;
  readonly newestAgeSeconds: number | null;
  /** Distinct zbm snapshot names over the guest's disks: one backup snapshots all its disks. */
  readonly backups: number;
  readonly usedBytes: number;
  /** With a remote: the oldest of the disks' newest common snapshots; null when a disk has none. */
  readonly replicationLagSeconds?: number | null;
  readonly notReplicated?: readonly string[];
}

export interface RemoteView {
  readonly name: string;
  readonly root: string;
  readonly datasets: ReadonlyMap<string, Dataset>;
}

export function buildStatus(
  listing: readonly Dataset[],
  root: string,
  prefix: string,
  now: number,
  names: ReadonlyMap<number, string>,
  remote?: RemoteView,
): GuestStatus[] {
  const groups = new Map<string, { vmid: number | null; datasets: Dataset[] }>();
  for (const d of listing) {
    if (d.name === root && d.snapshots.length === 0) continue;
    const vmid = vmidOf(d.name);
    const key = vmid === null ? `~${d.name}` : String(vmid).padStart(12, '0');
    const g = groups.get(key) ?? { vmid, datasets: [] };
    g.datasets.push(d);
    groups.set(key, g);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, g]) => {
      const disks = families(g.datasets, prefix);
      const ours = g.datasets.flatMap((d) => d.snapshots.filter((s) => s.short.startsWith(prefix)));
      const newest = ours.reduce<(typeof ours)[number] | null>(
        (a, s) => (a === null || s.creation > a.creation ? s : a),
        null,
      );
      const row: GuestStatus = {
        vmid: g.vmid,
        name: g.vmid === null ? '' : (names.get(g.vmid) ?? ''),
        // A disk's later chains (plan/chain.ts) are that disk still.
        disks: [...disks.keys()],
        newest: newest?.short ?? null,
        newestAgeSeconds: newest ? now - newest.creation : null,
        backups: new Set(ours.map((s) => s.short)).size,
        usedBytes: g.datasets.reduce((n, d) => n + d.used, 0),
      };
      if (!remote) return row;
      const notReplicated: string[] = [];
      let lag: number | null = 0;
      for (const [disk, chains] of disks) {
        // The newest backup of the disk the remote has, in whichever chain.
        let common: Dataset['snapshots'][number] | undefined;
        for (const d of chains) {
          const rel = d.name === root ? '' : d.name.slice(root.length + 1);
          const there = remote.datasets.get(rel === '' ? remote.root : `${remote.root}/${rel}`);
          const guids = new Set(there?.snapshots.map((s) => s.guid) ?? []);
          const c = d.snapshots.filter((s) => s.short.startsWith(prefix) && guids.has(s.guid)).at(-1);
          if (c && (!common || c.creation > common.creation)) common = c;
        }
        if (!common) {
          notReplicated.push(disk);
          lag = null;
        } else if (lag !== null) {
          lag = Math.max(lag, now - common.creation);
        }
      }
      return { ...row, replicationLagSeconds: lag, notReplicated };
    });
}

export function renderStatusTable(rows: readonly GuestStatus[], remote?: string): string {
  const header = ['vmid', 'name', 'disks', 'newest backup', 'age', 'backups', 'used'];
  if (remote) header.push(`lag to ${remote}`);
  const body = rows.map((r) => {
    const cells = [
      r.vmid === null ? '-' : String(r.vmid),
      r.vmid === null ? (r.disks[0] ?? '') : r.name || '-',
      String(r.disks.length),
      r.newest ?? 'none',
      r.newestAgeSeconds === null ? '-' : formatAge(r.newestAgeSeconds),
      String(r.backups),
      formatBytes(r.usedBytes),
    ];
    if (remote) {
      cells.push(
        r.replicationLagSeconds === null || r.replicationLagSeconds === undefined
          ? `not replicated (${r.notReplicated?.length ?? 0} disk(s))`
          : formatAge(r.replicationLagSeconds),
      );
    }
    return cells;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((c) => (c[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...body.map(line)].join('\n')}\n`;
}
