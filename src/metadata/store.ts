/**
 * The metadata store: the guest configs and manifests beside the backups, on every tier that holds
 * backups. Layout (documented in docs/metadata.md):
 *   <metadata-dir>/<vmid>/<snapshot>.conf   the guest's config at the moment of the snapshot
 *   <metadata-dir>/<vmid>/<snapshot>.json   the manifest (manifest.ts)
 * One pair of files per guest and snapshot name: backup-pve writes it (write.ts), prune removes it
 * with its snapshot (remove.ts), and replicate copies the files of the snapshots it copies (copy.ts).
 * This file: where the directory is, the paths in it, and which guest a dataset belongs to.
 */
import { UsageError } from '../errors.ts';
import { parseVolname } from '../pve/volumes.ts';
import type { Dataset } from '../zfs/types.ts';

/**
 * Set by backup-pve on the backup server's root: where the metadata of the datasets below lives.
 * Through zbm serve a node can only set it to serve's own --metadata-dir, so on a server whose
 * nodes go through serve it names a directory the administrator chose; a command given the
 * directory explicitly (--local-metadata-dir, --remote-metadata-dir) uses that and says when the
 * property disagrees.
 */
export const METADATA_DIR_PROPERTY = 'zbm:metadata-dir';

/** The largest config or manifest zbm writes, accepts through serve, or reads: PVE's own stay far below. */
export const METADATA_FILE_LIMIT = 1024 * 1024;

/**
 * The metadata directory a command works in: the one it was given (by the flag named flag), else
 * the root's property. Returns the reason when there is none usable. Pure.
 */
export function chooseMetadataDir(
  given: string | undefined,
  property: string | undefined,
  where: string,
  flag: string,
): { dir: string; warning?: string } | { error: string } {
  if (given !== undefined) {
    const differs = property !== undefined && property !== given;
    return differs
      ? {
          dir: given,
          warning: `${where} has ${METADATA_DIR_PROPERTY}=${property}; using ${flag} ${given}`,
        }
      : { dir: given };
  }
  return metadataDirOf(property, where);
}

/** The metadata directory the root's property names, when it is usable (an absolute path). Pure. */
export function metadataDirOf(
  property: string | undefined,
  where: string,
): { dir: string } | { error: string } {
  if (property === undefined) return { error: `${where} has no ${METADATA_DIR_PROPERTY} property` };
  if (!property.startsWith('/') || /[\n\0]/.test(property) || property.split('/').includes('..'))
    return {
      error: `${where} has ${METADATA_DIR_PROPERTY}=${JSON.stringify(property)}, not an absolute path`,
    };
  return { dir: property };
}

/** The VMID of a PVE volume dataset, from its last component (`.../vm-100-disk-0` → 100). */
export function vmidOf(dataset: string): number | null {
  const v = parseVolname(dataset.slice(dataset.lastIndexOf('/') + 1));
  return v?.plainVmid && v.rest !== '' ? v.vmid : null;
}

export function metadataPaths(
  dir: string,
  vmid: number,
  snapshot: string,
): { config: string; manifest: string } {
  const base = `${dir}/${vmid}/${snapshot}`;
  return { config: `${base}.conf`, manifest: `${base}.json` };
}

/** What a metadata file's path relative to its directory looks like (a VMID has no leading zero). */
export const METADATA_FILE = /^[1-9]\d*\/[^/]+\.(conf|json)$/;

/**
 * The metadata directory given for a tier: --remote-metadata-dir with --remote, --local-metadata-dir
 * with --local-zfs-root, or the earlier --metadata-dir for either. prune and verify, whose backups
 * are always those under --local-zfs-root (their --remote is the next tier), pass no remote.
 */
export function metadataDirOption(opts: {
  remote?: string;
  remoteMetadataDir?: string;
  localMetadataDir?: string;
  metadataDir?: string;
}): string | undefined {
  const [given, other] =
    opts.remote === undefined
      ? [opts.localMetadataDir, ['--remote-metadata-dir', opts.remoteMetadataDir] as const]
      : [opts.remoteMetadataDir, ['--local-metadata-dir', opts.localMetadataDir] as const];
  if (other[1] !== undefined) {
    throw new UsageError(
      opts.remote === undefined
        ? '--remote-metadata-dir goes with --remote: with --local-zfs-root the directory is --local-metadata-dir'
        : '--local-metadata-dir goes with --local-zfs-root: with --remote the directory is --remote-metadata-dir',
    );
  }
  if (given !== undefined && opts.metadataDir !== undefined && given !== opts.metadataDir) {
    throw new UsageError('--metadata-dir is the earlier spelling of the same option: give one of them');
  }
  return given ?? opts.metadataDir;
}

/** The datasets of each guest, by the VMID in their volume names; other datasets are left out. Pure. */
export function datasetsByGuest<D extends Pick<Dataset, 'name'>>(datasets: readonly D[]): Map<number, D[]> {
  const byGuest = new Map<number, D[]>();
  for (const d of datasets) {
    const vmid = vmidOf(d.name);
    if (vmid === null) continue;
    const list = byGuest.get(vmid) ?? [];
    list.push(d);
    byGuest.set(vmid, list);
  }
  return byGuest;
}

/** vmid → snapshot names that some dataset of that guest has. Pure. */
export function snapshotsByGuest(datasets: readonly Dataset[]): Map<number, Set<string>> {
  const byGuest = new Map<number, Set<string>>();
  for (const [vmid, own] of datasetsByGuest(datasets)) {
    byGuest.set(vmid, new Set(own.flatMap((d) => d.snapshots.map((s) => s.short))));
  }
  return byGuest;
}
