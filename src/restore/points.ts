/**
 * Restore points: the backups of a guest that one tier (the backup server or the replica) can
 * restore, from the manifests beside the data (docs/metadata.md) and one listing of the tier's
 * datasets. Pure.
 */
import { type Manifest, type ManifestDisk, METADATA_FILE_LIMIT } from '../backup/metadata.ts';
import { targetDataset, trailingStampTime } from '../conventions/names.ts';
import { nameProblem } from '../zfs/names.ts';
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

export interface RestorePoint {
  readonly vmid: number;
  readonly type: 'qemu' | 'lxc';
  readonly name: string;
  /** The node the guest ran on when it was backed up. */
  readonly node: string;
  readonly snapshot: string;
  /** UTC, ISO 8601. */
  readonly time: string;
  readonly frozen: boolean;
  readonly disks: readonly PointDisk[];
  /** Disks of the guest that the backup did not contain (from the manifest), with the reason. */
  readonly missing: readonly { key: string; reason: string }[];
  /** Every disk of the backup is present on this tier. */
  readonly complete: boolean;
  /** Bytes referenced by the present disks' snapshots. */
  readonly referenced: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/**
 * Reads a manifest file. Its content comes from another host: everything zbm later hands to zfs
 * or a shell is checked here (the names), the rest only has to have the right type.
 */
export function parseManifest(text: string, where: string): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`${where}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isObject(data)) throw new Error(`${where}: expected a JSON object`);
  if (data.format !== 1)
    throw new Error(`${where}: manifest format ${JSON.stringify(data.format)} is unknown`);
  const vmid = data.vmid;
  if (typeof vmid !== 'number' || !Number.isInteger(vmid) || vmid < 100) {
    throw new Error(`${where}: vmid ${JSON.stringify(vmid)} is not a VMID`);
  }
  if (data.type !== 'qemu' && data.type !== 'lxc') {
    throw new Error(`${where}: type ${JSON.stringify(data.type)} is neither qemu nor lxc`);
  }
  const snapshot = str(data.snapshot);
  if (nameProblem(`x@${snapshot}`, 'snapshot')) {
    throw new Error(`${where}: snapshot ${JSON.stringify(data.snapshot)} is not a snapshot name`);
  }
  if (!Array.isArray(data.disks)) throw new Error(`${where}: "disks" is not a list`);
  const disks: ManifestDisk[] = data.disks.map((d: unknown, i: number) => {
    if (!isObject(d)) throw new Error(`${where}: disks[${i}] is not an object`);
    const target = str(d.target);
    const problem = nameProblem(target, 'dataset');
    if (problem) throw new Error(`${where}: disks[${i}].target ${JSON.stringify(d.target)}: ${problem}`);
    if (!/^[a-z][a-z0-9]*$/.test(str(d.key))) {
      throw new Error(`${where}: disks[${i}].key ${JSON.stringify(d.key)} is not a config key`);
    }
    return {
      key: str(d.key),
      volume: str(d.volume),
      source: str(d.source),
      target,
      guid: /^\d+$/.test(str(d.guid)) ? str(d.guid) : '',
      referenced: num(d.referenced),
      bytesSent: num(d.bytesSent),
      mode: str(d.mode),
    };
  });
  const missing = Array.isArray(data.missing)
    ? data.missing.filter(isObject).map((m) => ({ key: str(m.key), reason: str(m.reason) }))
    : [];
  return {
    format: 1,
    zbm: str(data.zbm),
    vmid,
    type: data.type,
    name: str(data.name),
    node: str(data.node),
    snapshot,
    time: str(data.time),
    frozen: data.frozen === true,
    disks,
    missing,
  };
}

/**
 * Prints `<vmid>/<snapshot>.json`, the file, and a NUL for each manifest (of one guest, or of all):
 * the whole metadata of a tier in one command, whatever the number of backups. Only regular files
 * in guest folders that are directories (never through a symlink), each cut at the size zbm
 * writes at most.
 */
const DUMP = `cd -- "$1" 2>/dev/null || exit 0
for f in $2/*.json; do [ -f "$f" ] && [ ! -L "$f" ] && [ ! -L "\${f%/*}" ] || continue; printf '%s\\n' "$f"; head -c ${METADATA_FILE_LIMIT} -- "$f"; printf '\\000'; done`;

/** The command that prints the manifests of one guest, or of all, under metadataDir (DUMP). */
export function dumpManifestsArgv(metadataDir: string, vmid?: number): string[] {
  return ['sh', '-c', DUMP, 'zbm-manifests', metadataDir, vmid === undefined ? '[1-9]*' : String(vmid)];
}

/**
 * Prints one guest config of the tier: a regular file in a guest folder that is a directory,
 * never through a symlink, at most the size zbm writes.
 */
export function readConfigArgv(metadataDir: string, vmid: number, snapshot: string): string[] {
  return [
    'sh',
    '-c',
    `f="$1/$2/$3.conf"; if [ -L "$1/$2" ] || [ -L "$f" ] || [ ! -f "$f" ]; then echo "zbm: $f is not a regular file (a symlink is never followed)" >&2; exit 1; fi; head -c ${METADATA_FILE_LIMIT} -- "$f"`,
    'zbm-config',
    metadataDir,
    String(vmid),
    snapshot,
  ];
}

/**
 * The files of a metadata dump: records `<vmid>/<snapshot>.json\n<content>` separated by NUL
 * (what the reader on the tier prints). Unreadable manifests are reported, never fatal: one bad
 * file must not hide the other backups.
 */
export function parseManifestDump(dump: string): { manifests: Manifest[]; errors: string[] } {
  const manifests: Manifest[] = [];
  const errors: string[] = [];
  for (const record of dump.split('\0')) {
    if (record.trim() === '') continue;
    const nl = record.indexOf('\n');
    const path = (nl < 0 ? record : record.slice(0, nl)).replace(/^\n+/, '');
    const m = /^([1-9]\d*)\/(.+)\.json$/.exec(path);
    if (!m) {
      errors.push(`${JSON.stringify(path)} is not <vmid>/<snapshot>.json`);
      continue;
    }
    try {
      const manifest = parseManifest(nl < 0 ? '' : record.slice(nl + 1), path);
      if (manifest.vmid !== Number(m[1]) || manifest.snapshot !== m[2]) {
        throw new Error(`${path}: names guest ${manifest.vmid} snapshot ${manifest.snapshot}`);
      }
      manifests.push(manifest);
    } catch (err) {
      errors.push(err instanceof Error ? err.message : String(err));
    }
  }
  return { manifests, errors };
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
