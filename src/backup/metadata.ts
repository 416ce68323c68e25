import type { Host } from '../host/host.ts';
import { run } from '../host/process.ts';
import { VERSION } from '../version.ts';

/**
 * Layout on the backup server (documented in docs/metadata.md):
 *   <metadata-dir>/<vmid>/<snapshot>.conf   the guest's config at the moment of the snapshot
 *   <metadata-dir>/<vmid>/<snapshot>.json   the manifest (Manifest below)
 * One pair of files per guest and snapshot name: prune removes the pair with its snapshot, and
 * replicate copies the files of the snapshots it copies.
 */
/** Set by backup-pve on the backup server's root: where the metadata of the datasets below lives. */
export const METADATA_DIR_PROPERTY = 'zbm:metadata-dir';

const VOLUME = /^(?:vm|subvol|base|basevol)-([1-9]\d*)-./;

/** The VMID of a PVE volume dataset, from its last component (`.../vm-100-disk-0` → 100). */
export function vmidOf(dataset: string): number | null {
  const m = VOLUME.exec(dataset.slice(dataset.lastIndexOf('/') + 1));
  return m ? Number(m[1]) : null;
}

export interface ManifestDisk {
  readonly key: string;
  readonly volume: string;
  readonly source: string;
  readonly target: string;
  readonly guid: string;
  readonly referenced: number;
  readonly bytesSent: number;
  readonly mode: string;
}

export interface Manifest {
  readonly format: 1;
  readonly zbm: string;
  readonly vmid: number;
  readonly type: 'qemu' | 'lxc';
  readonly name: string;
  readonly node: string;
  readonly snapshot: string;
  readonly time: string;
  readonly frozen: boolean;
  readonly disks: readonly ManifestDisk[];
  /** Disks of the guest that are not in this backup, and why. */
  readonly missing: readonly { key: string; reason: string }[];
}

export function metadataPaths(
  dir: string,
  vmid: number,
  snapshot: string,
): { config: string; manifest: string } {
  const base = `${dir}/${vmid}/${snapshot}`;
  return { config: `${base}.conf`, manifest: `${base}.json` };
}

export function buildManifest(m: Omit<Manifest, 'format' | 'zbm'>): Manifest {
  return { format: 1, zbm: VERSION, ...m };
}

/**
 * Writes a file on host atomically: a temporary file in the same directory, flushed, then renamed,
 * so that a reader never sees half a config. The path is an argument of the script, never part of it.
 */
export async function writeFileAtomic(host: Host, path: string, content: string): Promise<void> {
  await run(host, [...WRITE_FILE_ARGV, path], { input: content, timeoutMs: 120_000 });
}

/** The command writeFileAtomic runs, without the path; `zbm serve` recognizes exactly this one. */
export const WRITE_FILE_ARGV = [
  'sh',
  '-c',
  'set -e; mkdir -p -- "$(dirname -- "$1")"; t="$1.tmp.$$"; cat > "$t"; sync -- "$t"; mv -f -- "$t" "$1"',
  'zbm-write',
] as const;
