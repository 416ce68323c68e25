/**
 * The guest configs and manifests backup-pve writes beside the data
 * (`<metadata-dir>/<vmid>/<snapshot>.conf|.json`, see store.ts) go with their
 * snapshot: once no dataset of the guest has that snapshot any more, its files are removed.
 */
import { lstat, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { snapshotTime } from '../conventions/names.ts';
import { errorMessage } from '../errors.ts';

const FILE = /^(.+)\.(conf|json)$/;

export interface GuestSnapshots {
  /** Snapshot names still present on at least one dataset of the guest after the destroy. */
  readonly remaining: ReadonlySet<string>;
  /** Snapshot names this run destroyed on some dataset of the guest. */
  readonly destroyed: ReadonlySet<string>;
}

/**
 * Which metadata files of one guest's folder to remove: those of a zbm snapshot that no dataset
 * of the guest has any more, when this run destroyed it, or when it is older than the guest's
 * newest zbm snapshot (a leftover of an interrupted prune). A file newer than everything listed
 * belongs to a backup arriving while prune runs and is never touched; a snapshot named for a time
 * after latest (this host's clock and its skew) is no measure of "newer". Pure.
 */
export function metadataToRemove(
  files: readonly string[],
  prefix: string,
  guest: GuestSnapshots,
  latest = Number.POSITIVE_INFINITY,
): string[] {
  let newest = Number.NEGATIVE_INFINITY;
  for (const s of guest.remaining) {
    const t = snapshotTime(s, prefix, Number.NaN);
    if (Number.isFinite(t) && t <= latest) newest = Math.max(newest, t);
  }
  return files.filter((f) => {
    const m = FILE.exec(f);
    const snap = m?.[1];
    if (snap === undefined || !snap.startsWith(prefix) || guest.remaining.has(snap)) return false;
    if (guest.destroyed.has(snap)) return true;
    const t = snapshotTime(snap, prefix, Number.NaN);
    return Number.isFinite(t) && t < newest;
  });
}

export interface MetadataResult {
  readonly removed: string[];
  readonly errors: string[];
}

/**
 * Removes the metadata files of snapshots gone from every dataset of their guest, with node fs:
 * only regular files directly in a guest folder that is itself a directory of dir, never through
 * a symlink (which could lead the removal out of dir).
 */
export async function pruneMetadata(
  dir: string,
  prefix: string,
  guests: ReadonlyMap<number, GuestSnapshots>,
  latest = Number.POSITIVE_INFINITY,
): Promise<MetadataResult> {
  const removed: string[] = [];
  const errors: string[] = [];
  for (const [vmid, guest] of guests) {
    const folder = join(dir, String(vmid));
    let names: string[];
    try {
      if (!(await lstat(folder)).isDirectory()) {
        errors.push(`${folder} is not a directory (a symlink is never followed): left as it is`);
        continue;
      }
      const entries = await readdir(folder, { withFileTypes: true });
      names = entries.filter((e) => e.isFile()).map((e) => e.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      errors.push(`reading ${folder}: ${errorMessage(err)}`);
      continue;
    }
    for (const name of metadataToRemove(names, prefix, guest, latest)) {
      const path = join(folder, name);
      try {
        await unlink(path);
        removed.push(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          errors.push(`removing ${path}: ${errorMessage(err)}`);
      }
    }
  }
  return { removed, errors };
}
