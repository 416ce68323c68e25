import type { Logger } from '../cli/log.ts';
import { writeOut } from '../cli/printable.ts';
import { formatBytes } from '../cli/progress.ts';
import { ExitCode, UsageError, ZbmError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { LocalHost } from '../host/local.ts';
import { run } from '../host/process.ts';
import { SshHost } from '../host/ssh.ts';
import { dumpManifestsArgv, parseManifestDump } from '../metadata/manifest.ts';
import { chooseMetadataDir, METADATA_DIR_PROPERTY, metadataDirOption } from '../metadata/store.ts';
import { type RestorePoint, restorePoints } from '../restore/points.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';

export interface ListBackupsOptions {
  readonly remote?: string;
  readonly remoteZfsRoot?: string;
  readonly localZfsRoot?: string;
  readonly remoteMetadataDir?: string;
  readonly localMetadataDir?: string;
  /** The earlier spelling, for whichever tier the backups are on. */
  readonly metadataDir?: string;
  readonly vmid?: number[];
  readonly prefix: string;
  readonly json?: boolean;
}

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

/** One listing and one metadata read of a tier: its datasets, where its metadata is, its restore points. */
export async function loadTier(
  tier: Tier,
  opts: { metadataDir?: string; vmid?: number },
  log: Logger,
): Promise<TierState> {
  const datasets = await tier.zfs.list({ roots: [tier.root], userProps: [METADATA_DIR_PROPERTY] });
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

function row(p: RestorePoint, host: string) {
  return {
    vmid: p.vmid,
    name: p.name,
    type: p.type,
    snapshot: p.snapshot,
    time: p.time,
    disks: p.disks.length,
    present: p.disks.filter((d) => d.present).map((d) => d.key),
    absent: p.disks.filter((d) => !d.present).map((d) => d.key),
    complete: p.complete,
    referenced: p.referenced,
    host,
  };
}

/** Lists the restore points of every guest (or of --vmid) on one tier. */
export async function listBackups(opts: ListBackupsOptions, log: Logger): Promise<number> {
  const metadataDir = metadataDirOption(opts);
  const tier = tierFromOptions(opts);
  const out = writeOut;
  try {
    const vmid = opts.vmid?.length === 1 ? opts.vmid[0] : undefined;
    const state = await loadTier(tier, { metadataDir, vmid }, log);
    const wanted = opts.vmid && opts.vmid.length > 0 ? new Set(opts.vmid) : null;
    const points = state.points.filter(
      (p) => p.snapshot.startsWith(opts.prefix) && (wanted === null || wanted.has(p.vmid)),
    );
    const rows = points.map((p) => row(p, tier.host.name));
    if (opts.json) {
      out(
        `${JSON.stringify({ host: tier.host.name, root: tier.root, metadataDir: state.metadataDir, backups: rows }, null, 2)}\n`,
      );
      return ExitCode.ok;
    }
    if (rows.length === 0) {
      log.info(
        `no backups${wanted ? ` of guest ${[...wanted].join(', ')}` : ''} on ${tier.host.name}:${tier.root}`,
      );
      return ExitCode.ok;
    }
    out(
      'vmid  type  name              snapshot                  time                  disks       size      host\n',
    );
    for (const r of rows) {
      const disks = `${r.present.length}/${r.disks}${r.complete ? '' : ` (missing ${r.absent.join(',')})`}`;
      out(
        `${String(r.vmid).padEnd(6)}${r.type.padEnd(6)}${(r.name || '-').slice(0, 16).padEnd(18)}${r.snapshot.padEnd(26)}` +
          `${r.time.replace(/\.\d+Z$/, 'Z').padEnd(22)}${disks.padEnd(12)}${formatBytes(r.referenced).padEnd(10)}${r.host}\n`,
      );
    }
    return ExitCode.ok;
  } finally {
    await tier.host.close();
  }
}
