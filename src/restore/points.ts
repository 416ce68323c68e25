/**
 * Restore points: the backups of a guest that one tier (the backup server or the replica) can
 * restore, from the manifests beside the data (docs/metadata.md) and one listing of the tier's
 * datasets. Pure.
 */
import { targetDataset, trailingStampTime } from '../conventions/names.ts';
import type { Manifest } from '../metadata/manifest.ts';
import type { Dataset } from '../zfs/types.ts';

export interface PointDisk {
  readonly key: string;
  /** `storage:volname` as the manifest recorded it (the config is authoritative for restores). */
  readonly volume: string;
  /** The disk's backup dataset on this tier. */
  readonly dataset: string;
  readonly guid: string;
  /** The snapshot exists on this tier with the manifest's guid. */
  readonly present: boolean;
  readonly referenced: number;
  readonly encrypted: boolean;
  /** The point's snapshot is the newest snapshot of the dataset on this tier. */
  readonly newest: boolean;
}

/** A backup as one tier can restore it: its manifest, each disk as found on the tier. */
export interface RestorePoint extends Omit<Manifest, 'format' | 'zbm' | 'disks'> {
  readonly disks: readonly PointDisk[];
  /** Every disk of the backup is present on this tier. */
  readonly complete: boolean;
  /** Bytes referenced by the present disks' snapshots. */
  readonly referenced: number;
}

/** The restore points of a tier, by vmid and then oldest first. */
export function restorePoints(
  manifests: readonly Manifest[],
  datasets: readonly Dataset[],
  root: string,
): RestorePoint[] {
  const byName = new Map(datasets.map((d) => [d.name, d]));
  const points = manifests.map((m): RestorePoint => {
    const disks = m.disks.map((d): PointDisk => {
      // A manifest's disk lives on each tier by the same rule as on the backup server.
      const dataset = targetDataset(root, d.target);
      const listing = byName.get(dataset);
      // Identity is the guid: a snapshot of the same name from another chain is another backup,
      // and a manifest without one (written by whoever could write there) names no backup at all.
      const snap = listing?.snapshots.find(
        (s) => s.short === m.snapshot && d.guid !== '' && s.guid === d.guid,
      );
      return {
        key: d.key,
        volume: d.volume,
        dataset,
        guid: snap?.guid ?? d.guid,
        present: snap !== undefined && !listing?.resumeToken,
        referenced: snap?.referenced ?? 0,
        encrypted: listing?.encrypted ?? false,
        newest: snap !== undefined && listing?.snapshots.at(-1)?.name === snap.name,
      };
    });
    return {
      vmid: m.vmid,
      type: m.type,
      name: m.name,
      node: m.node,
      snapshot: m.snapshot,
      time: m.time,
      frozen: m.frozen,
      disks,
      missing: m.missing,
      complete: disks.length > 0 && disks.every((d) => d.present),
      referenced: disks.reduce((n, d) => n + (d.present ? d.referenced : 0), 0),
    };
  });
  return points.sort((a, b) => a.vmid - b.vmid || pointTime(a) - pointTime(b));
}

/** The time of a point in ms; from the snapshot name (`<prefix>20261126T110503Z`) when the manifest has none. */
export function pointTime(p: Pick<RestorePoint, 'time' | 'snapshot'>): number {
  const t = Date.parse(p.time);
  if (Number.isFinite(t)) return t;
  return trailingStampTime(p.snapshot) ?? 0;
}

export interface Selection {
  readonly snapshot?: string;
  /** Newest at or before this time. */
  readonly time?: Date;
}

export type Choice =
  | { readonly point: RestorePoint; readonly skipped: readonly RestorePoint[] }
  | { readonly error: string };

function describe(p: RestorePoint): string {
  const absent = p.disks.filter((d) => !d.present).map((d) => d.key);
  return `${p.snapshot}${absent.length > 0 ? ` (missing here: ${absent.join(', ')})` : ''}`;
}

/**
 * Picks the restore point of one guest: by snapshot name, or the newest at or before a time, or
 * the newest; only points where usable(point) holds (all disks present, or the one disk asked for).
 * Newer unusable points that were passed over are returned, so that the caller can say so.
 */
export function choosePoint(
  points: readonly RestorePoint[],
  sel: Selection,
  usable: (p: RestorePoint) => boolean,
  where: string,
): Choice {
  const sorted = [...points].sort((a, b) => pointTime(a) - pointTime(b));
  const vmid = sorted[0]?.vmid;
  if (vmid === undefined) return { error: `${where} has no backup of this guest` };
  const available = () => `available: ${sorted.map(describe).join(', ')}`;
  if (sel.snapshot !== undefined) {
    const p = sorted.find((x) => x.snapshot === sel.snapshot);
    if (!p) return { error: `guest ${vmid} has no backup ${sel.snapshot} on ${where}; ${available()}` };
    if (!usable(p)) return { error: `backup ${describe(p)} of guest ${vmid} is incomplete on ${where}` };
    return { point: p, skipped: [] };
  }
  const limit = sel.time?.getTime() ?? Number.POSITIVE_INFINITY;
  const candidates = sorted.filter((p) => pointTime(p) <= limit);
  let idx = candidates.length - 1;
  while (idx >= 0 && !usable(candidates[idx] as RestorePoint)) idx--;
  if (idx < 0) {
    const when = sel.time ? ` at or before ${sel.time.toISOString()}` : '';
    return { error: `guest ${vmid} has no complete backup${when} on ${where}; ${available()}` };
  }
  return { point: candidates[idx] as RestorePoint, skipped: candidates.slice(idx + 1) };
}
