import { errorMessage } from '../errors.ts';
import type { Host } from '../host/host.ts';
import type { RateLimiter } from '../host/rate.ts';
import { acquire, describeHolder } from '../lock/lock.ts';
import type { Guest } from '../pve/index.ts';
import { holdTag, protectBases } from '../transfer/protect.ts';
import { type SyncResult, syncDataset } from '../transfer/sync.ts';
import { joinDataset } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';
import { withFrozenGuest } from './freeze.ts';
import { buildManifest, metadataPaths, writeFileAtomic } from './metadata.ts';

export interface BackupLog {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

export interface BackupContext {
  readonly node: string;
  readonly local: Host;
  readonly remote: Host;
  readonly localZfs: Zfs;
  readonly remoteZfs: Zfs;
  readonly prefix: string;
  readonly remoteZfsRoot: string;
  readonly metadataDir: string;
  readonly keepSource: number;
  readonly lockWaitMs: number;
  readonly limiter?: RateLimiter;
  readonly log: BackupLog;
  readonly now: () => Date;
  readonly onProgress?: (label: string, bytes: number) => void;
}

export interface DiskResult {
  readonly key: string;
  readonly source: string;
  readonly target: string;
  readonly mode: SyncResult['mode'] | 'failed';
  readonly resumed: SyncResult['resumed'];
  readonly bytes: number;
  readonly error?: string;
}

export interface GuestResult {
  readonly vmid: number;
  readonly name: string;
  readonly type: 'qemu' | 'lxc';
  readonly snapshot: string | null;
  readonly frozen: boolean;
  readonly disks: readonly DiskResult[];
  readonly bytes: number;
  readonly durationMs: number;
  readonly result: 'ok' | 'failed' | 'skipped';
  readonly error?: string;
  /** zbm snapshots on this node that are no longer needed, to destroy once the run is confirmed. */
  readonly obsolete: readonly string[];
}

/**
 * The source side of backup-pve's hold tag names no node: a guest that migrates takes its datasets
 * and their holds to another node, and the backup server's hold must be the same from either node,
 * or the old node's hold would pin an old base there forever.
 */
export const PVE_SOURCE = 'pve';

/** `<prefix>20261126T110503Z`: the UTC time of the snapshot, sortable, free of characters tools dislike. */
export function snapshotName(prefix: string, at: Date): string {
  return `${prefix}${at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;
}

/** Where a disk goes on the backup server: `<remote-zfs-root>/<volname>` (linked clones: the clone's name). */
export function targetDataset(remoteZfsRoot: string, dataset: string): string {
  return joinDataset(remoteZfsRoot, dataset.slice(dataset.lastIndexOf('/') + 1));
}

function failed(
  guest: Guest,
  started: number,
  error: string,
  result: 'failed' | 'skipped' = 'failed',
): GuestResult {
  return {
    vmid: guest.vmid,
    name: guest.name,
    type: guest.type,
    snapshot: null,
    frozen: false,
    disks: [],
    bytes: 0,
    durationMs: Date.now() - started,
    result,
    error,
    obsolete: [],
  };
}

/**
 * Backs up one guest: freeze → one atomic snapshot of all its disks → thaw, then each disk is sent
 * (resuming an interrupted transfer first), the new common snapshot is held on both sides and
 * bookmarked here, and the config and manifest are written beside the data.
 */
export async function backupGuest(
  ctx: BackupContext,
  guest: Guest,
  sourceListing: ReadonlyMap<string, Dataset>,
  targetListing: ReadonlyMap<string, Dataset>,
): Promise<GuestResult> {
  const started = Date.now();
  const { log } = ctx;
  const label = `guest ${guest.vmid}${guest.name ? ` (${guest.name})` : ''}`;

  const acquired = await acquire(`guest-${guest.vmid}`, `backup-pve of guest ${guest.vmid}`, ctx.lockWaitMs);
  if ('heldBy' in acquired) {
    return failed(
      guest,
      started,
      `skipped: ${describeHolder(acquired.heldBy)} is working on this guest; it is backed up on the next run`,
      'skipped',
    );
  }
  try {
    const disks = guest.disks.filter((d) => {
      if (sourceListing.has(d.dataset)) return true;
      log.warn(
        `${label}: disk ${d.key} (${d.value}): dataset ${d.dataset} does not exist on ${ctx.node}; not backed up`,
      );
      return false;
    });
    if (disks.length === 0) return failed(guest, started, 'no disk that zbm can back up', 'skipped');

    const targets = new Map(disks.map((d) => [d.dataset, targetDataset(ctx.remoteZfsRoot, d.dataset)]));
    if (new Set(targets.values()).size !== targets.size) {
      return failed(guest, started, 'two of its disks would have the same name on the backup server');
    }

    const at = ctx.now();
    const snapshot = snapshotName(ctx.prefix, at);
    const frozen = await withFrozenGuest(ctx.local, guest.vmid, guest.freeze, log, () =>
      ctx.localZfs.snapshot(disks.map((d) => `${d.dataset}@${snapshot}`)),
    );
    log.info(
      `${label}: snapshot ${snapshot} of ${disks.length} disk(s)${frozen ? ', file systems frozen' : ''}`,
    );

    const fresh = new Map(
      (await ctx.localZfs.list({ roots: disks.map((d) => d.dataset), depth: 1 })).map((d) => [d.name, d]),
    );
    const select = (short: string) => short.startsWith(ctx.prefix);
    const results: DiskResult[] = [];
    const synced: { source: Dataset; target: string; sync: SyncResult }[] = [];
    for (const disk of disks) {
      const target = targets.get(disk.dataset) ?? '';
      const source = fresh.get(disk.dataset) ?? null;
      try {
        const sync = await syncDataset(
          { zfs: ctx.localZfs, dataset: disk.dataset, listing: source },
          { zfs: ctx.remoteZfs, dataset: target, listing: targetListing.get(target) ?? null },
          {
            select,
            limiter: ctx.limiter,
            onProgress: (b) => ctx.onProgress?.(`${label} ${disk.key}`, b),
            onMessage: (m) => log.warn(`${label}: ${m}`),
          },
        );
        results.push({
          key: disk.key,
          source: disk.dataset,
          target,
          mode: sync.mode,
          resumed: sync.resumed,
          bytes: sync.bytes,
        });
        if (source) synced.push({ source, target, sync });
      } catch (err) {
        const error = errorMessage(err);
        log.error(`${label}: disk ${disk.key} ${disk.dataset} → ${ctx.remote.name}:${target}: ${error}`);
        results.push({
          key: disk.key,
          source: disk.dataset,
          target,
          mode: 'failed',
          resumed: null,
          bytes: 0,
          error,
        });
      }
    }

    const obsolete: string[] = [];
    try {
      await protectBases(
        ctx.localZfs,
        ctx.remoteZfs,
        holdTag(PVE_SOURCE, ctx.remote.name),
        synced.map(({ source, target, sync }) => ({
          source,
          target,
          targetBefore: targetListing.get(target) ?? null,
          common: sync.common.short,
        })),
        select,
      );
      for (const { source, sync } of synced) {
        obsolete.push(...obsoleteSnapshots(source, sync.common.short, ctx.prefix, ctx.keepSource));
      }
    } catch (err) {
      // Without a protected base, nothing is destroyed on the node this run.
      log.error(`${label}: protecting the new base snapshots: ${errorMessage(err)}`);
    }

    let metadataError: string | undefined;
    const ok = results.filter((r) => r.mode !== 'failed');
    if (ok.length > 0) {
      try {
        await writeMetadata(ctx, guest, snapshot, at, frozen, fresh, results);
      } catch (err) {
        metadataError = `writing the config and manifest to ${ctx.remote.name}:${ctx.metadataDir}: ${errorMessage(err)}`;
        log.error(`${label}: ${metadataError}`);
      }
    }
    const bad = results.filter((r) => r.mode === 'failed');
    return {
      vmid: guest.vmid,
      name: guest.name,
      type: guest.type,
      snapshot,
      frozen,
      disks: results,
      bytes: results.reduce((n, r) => n + r.bytes, 0),
      durationMs: Date.now() - started,
      result: bad.length === 0 && !metadataError ? 'ok' : 'failed',
      error:
        bad.length > 0
          ? `${bad.length} of ${results.length} disk(s) failed: ${bad.map((b) => b.key).join(', ')}`
          : metadataError,
      obsolete,
    };
  } catch (err) {
    log.error(`${label}: ${errorMessage(err)}`);
    return failed(guest, started, errorMessage(err));
  } finally {
    acquired.lock.release();
  }
}

/** zbm snapshots of source beyond the newest keepSource, never the common base. Pure. */
export function obsoleteSnapshots(
  source: Dataset,
  common: string,
  prefix: string,
  keepSource: number,
): string[] {
  const ours = source.snapshots.filter((s) => s.short.startsWith(prefix));
  const keep = new Set(ours.slice(Math.max(0, ours.length - keepSource)).map((s) => s.short));
  keep.add(common);
  return ours.filter((s) => !keep.has(s.short)).map((s) => s.name);
}

async function writeMetadata(
  ctx: BackupContext,
  guest: Guest,
  snapshot: string,
  at: Date,
  frozen: boolean,
  fresh: ReadonlyMap<string, Dataset>,
  results: readonly DiskResult[],
): Promise<void> {
  const paths = metadataPaths(ctx.metadataDir, guest.vmid, snapshot);
  const manifest = buildManifest({
    vmid: guest.vmid,
    type: guest.type,
    name: guest.name,
    node: ctx.node,
    snapshot,
    time: at.toISOString(),
    frozen,
    disks: results
      .filter((r) => r.mode !== 'failed')
      .map((r) => {
        const snap = fresh.get(r.source)?.snapshots.find((s) => s.short === snapshot);
        const disk = guest.disks.find((d) => d.key === r.key);
        return {
          key: r.key,
          // From the parsed disk: a CT's value may start with other properties (`acl=0,volume=...`).
          volume: disk ? `${disk.storage}:${disk.volname}` : '',
          source: r.source,
          target: r.target,
          guid: snap?.guid ?? '',
          referenced: snap?.referenced ?? 0,
          bytesSent: r.bytes,
          mode: r.mode,
        };
      }),
    missing: [
      ...results.filter((r) => r.mode === 'failed').map((r) => ({ key: r.key, reason: r.error ?? 'failed' })),
      ...guest.skipped.filter((s) => s.warn).map((s) => ({ key: s.key, reason: s.reason })),
    ],
  });
  await writeFileAtomic(ctx.remote, paths.config, guest.configText);
  await writeFileAtomic(ctx.remote, paths.manifest, `${JSON.stringify(manifest, null, 2)}\n`);
}
