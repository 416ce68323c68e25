/**
 * A tier that holds backups (the backup server or the replica, here or over ssh) as list-backups
 * and restore read it: one listing of its datasets and one read of its manifests.
 */
import { UsageError, ZbmError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { LocalHost } from '../host/local.ts';
import { run } from '../host/process.ts';
import { SshHost } from '../host/ssh.ts';
import { dumpManifestsArgv, parseManifestDump } from '../metadata/manifest.ts';
import { chooseMetadataDir, METADATA_DIR_PROPERTY } from '../metadata/store.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';
import type { OriginOnTier } from './plan.ts';
import { type RestorePoint, restorePoints } from './points.ts';

/** A tier that holds backups: the backup server or the replica, here or over ssh. */
export interface Tier {
  readonly host: Host;
  readonly zfs: Zfs;
  readonly root: string;
}

export interface TierState {
  readonly datasets: readonly Dataset[];
  readonly metadataDir: string;
  readonly points: readonly RestorePoint[];
}

/** `--remote X --remote-zfs-root R` (on a node) or `--local-zfs-root R` (on a tier itself). */
export function tierFromOptions(opts: {
  remote?: string;
  remoteZfsRoot?: string;
  localZfsRoot?: string;
}): Tier {
  if (opts.remote !== undefined) {
    if (opts.remoteZfsRoot === undefined) throw new UsageError('--remote needs --remote-zfs-root');
    if (opts.localZfsRoot !== undefined) {
      throw new UsageError('--local-zfs-root and --remote are exclusive: the backups are on one tier');
    }
    const host = new SshHost(opts.remote);
    return { host, zfs: new Zfs(host), root: opts.remoteZfsRoot };
  }
  if (opts.localZfsRoot === undefined) {
    throw new UsageError(
      'where are the backups? --local-zfs-root on the backup server or replica, or --remote and --remote-zfs-root',
    );
  }
  const host = new LocalHost();
  return { host, zfs: new Zfs(host), root: opts.localZfsRoot };
}

/** The clones among a tier's datasets: each one's origin snapshot and that snapshot's guid. Pure. */
export function originsOf(datasets: readonly Dataset[]): Map<string, OriginOnTier> {
  const snapshots = new Map(datasets.flatMap((d) => d.snapshots.map((s) => [s.name, s.guid] as const)));
  const out = new Map<string, OriginOnTier>();
  for (const d of datasets) {
    const guid = d.origin === null ? undefined : snapshots.get(d.origin);
    if (d.origin !== null && guid !== undefined) out.set(d.name, { snapshot: d.origin, guid });
  }
  return out;
}

/** One listing and one metadata read of a tier: its datasets, where its metadata is, its restore points. */
export async function loadTier(
  tier: Tier,
  opts: { metadataDir?: string; vmid?: number },
  log: { warn(msg: string): void },
): Promise<TierState> {
  // With origins: a linked clone's copy is a clone of its template's, and restore says so.
  const datasets = await tier.zfs.list({
    roots: [tier.root],
    userProps: [METADATA_DIR_PROPERTY],
    withOrigin: true,
  });
  const rootDs = datasets.find((d) => d.name === tier.root);
  if (!rootDs)
    throw new ZbmError(`${tier.root} does not exist on ${tier.host.name}: is it the root of the backups?`);
  const flag = `--${tier.host.isLocal ? 'local' : 'remote'}-metadata-dir`;
  const place = chooseMetadataDir(
    opts.metadataDir,
    rootDs.props[METADATA_DIR_PROPERTY],
    `${tier.host.name}:${tier.root}`,
    flag,
  );
  if ('error' in place)
    throw new ZbmError(`${place.error}: name the directory of the configs and manifests with ${flag}`);
  if (place.warning) log.warn(place.warning);
  const metadataDir = place.dir;
  const { stdout } = await run(tier.host, dumpManifestsArgv(metadataDir, opts.vmid));
  const { manifests, errors } = parseManifestDump(stdout);
  for (const e of errors) log.warn(`${tier.host.name}:${metadataDir}: ${e}`);
  return { datasets, metadataDir, points: restorePoints(manifests, datasets, tier.root) };
}
