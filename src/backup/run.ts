/**
 * The run of backup-pve: the guests of this node, both listings, the backup server's root and its
 * metadata property, then the guests backed up (backup.ts), the node's obsolete snapshots
 * destroyed and the run's gauges set. The command (commands/backup-pve.ts) gives the hosts, the
 * progress line and the terminal's question, and prints the plan or the results.
 */
import { readFile } from 'node:fs/promises';
import type { Host } from '../host/host.ts';
import { RateLimiter } from '../host/rate.ts';
import { METADATA_DIR_PROPERTY } from '../metadata/store.ts';
import type { Metrics } from '../metrics/prometheus.ts';
import { configPath, discover, type Guest, guestLock, parseGuestConfig, readPveState } from '../pve/index.ts';
import { splitSnapshot } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';
import { backupGuests } from './backup.ts';
import type { BackupContext, BackupLog, GuestResult } from './context.ts';
import { planLines } from './report.ts';

/** What a run does, from backup-pve's flags (the command's options are one). */
export interface BackupScope {
  readonly node?: string;
  readonly localZfsRoot: string;
  readonly vmid?: number[];
  readonly exclude?: number[];
  readonly remote: string;
  readonly remoteZfsRoot: string;
  readonly remoteMetadataDir: string;
  readonly prefix: string;
  readonly keepSource: number;
  readonly lockWait: number;
  readonly jobs?: number;
  readonly bwlimit?: number;
  readonly yes?: boolean;
  readonly dryRun?: boolean;
}

/** What a run reaches and asks; the command gives them. */
export interface BackupIO {
  /** The backup server (--remote). */
  readonly remote: Host;
  /** This node, under its Proxmox name. */
  local(node: string): Host;
  /** The progress line of the transfer under way; the command's terminal line is one. */
  readonly progress: { update(label: string, bytes: number): void; clear(): void };
  /** Whether to destroy the node's obsolete snapshots without -y: false when nobody can be asked. */
  confirm(question: string): Promise<boolean>;
}

/** A dry run's plan, or what a run did; either way the guests whose config could not be read. */
export type BackupOutcome = {
  readonly failed: readonly { readonly vmid: number; readonly error: string }[];
} & (
  | { readonly kind: 'plan'; readonly lines: readonly string[] }
  | { readonly kind: 'done'; readonly node: string; readonly results: readonly GuestResult[] }
);

function byName(list: readonly Dataset[]): Map<string, Dataset> {
  return new Map(list.map((d) => [d.name, d]));
}

/** Backs up this node's guests (or --vmid's) to the backup server; a dry run only plans. */
export async function runBackup(
  scope: BackupScope,
  io: BackupIO,
  log: BackupLog,
  metrics?: Metrics,
): Promise<BackupOutcome> {
  const { remote, progress } = io;
  const remoteZfs = new Zfs(remote);
  // The remote listing needs nothing from /etc/pve: it starts first, so that the ssh connection
  // opens while the guests are read. Its own listing says whether the root exists and where its
  // metadata directory is.
  const targetListing = remoteZfs
    .list({ roots: [scope.remoteZfsRoot], userProps: [METADATA_DIR_PROPERTY] })
    .then(byName);
  // Awaited below; when reading /etc/pve fails first, that error is the one reported.
  targetListing.catch(() => {});
  const state = await readPveState('/etc/pve', scope.node);
  const found = discover(state, {
    localZfsRoot: scope.localZfsRoot,
    vmids: scope.vmid,
    exclude: scope.exclude,
  });
  for (const w of found.warnings) log.warn(w);
  for (const f of found.failed) log.error(`guest ${f.vmid}: ${f.error}`);

  const local = io.local(state.node);
  const localZfs = new Zfs(local);
  const source = byName(await localZfs.list({ roots: [scope.localZfsRoot], withOrigin: true }));

  if (scope.dryRun)
    return {
      kind: 'plan',
      lines: await planLines(found.guests, scope, localZfs, source, await targetListing),
      failed: found.failed,
    };
  // The root made ready while the guests are snapshotted (backupGuests awaits it before sending).
  const target = targetListing.then(async (listed) => {
    const remoteRoot = listed.get(scope.remoteZfsRoot);
    if (!remoteRoot) {
      log.info(`creating ${remote.name}:${scope.remoteZfsRoot}`);
      await remoteZfs.create(scope.remoteZfsRoot);
    }
    // prune and replicate on the backup server find the guests' configs through this property.
    if (remoteRoot?.props[METADATA_DIR_PROPERTY] !== scope.remoteMetadataDir) {
      await remoteZfs.setUserProperties(scope.remoteZfsRoot, {
        [METADATA_DIR_PROPERTY]: scope.remoteMetadataDir,
      });
    }
    return listed;
  });
  target.catch(() => {});

  const ctx: BackupContext = {
    node: state.node,
    local,
    remote,
    localZfs,
    remoteZfs,
    prefix: scope.prefix,
    remoteZfsRoot: scope.remoteZfsRoot,
    metadataDir: scope.remoteMetadataDir,
    keepSource: scope.keepSource,
    lockWaitMs: scope.lockWait * 1000,
    jobs: scope.jobs,
    limiter: scope.bwlimit ? new RateLimiter(scope.bwlimit) : undefined,
    log: {
      error: (m) => {
        progress.clear();
        log.error(m);
      },
      warn: (m) => {
        progress.clear();
        log.warn(m);
      },
      info: (m) => {
        progress.clear();
        log.info(m);
      },
      debug: (m) => log.debug(m),
    },
    now: () => new Date(),
    onProgress: (label, bytes) => progress.update(label, bytes),
    currentLock: async (g: Guest) =>
      guestLock(
        parseGuestConfig(await readFile(`/etc/pve/${configPath(state.node, g.type, g.vmid)}`, 'utf8'))
          .current,
      ),
  };

  // The guests' disks are sent one at a time (the node's disks and the link are shared); the
  // snapshots, holds and metadata are done once for the run. One failure never stops the rest.
  const results = await backupGuests(ctx, found.guests, source, target);
  progress.clear();
  for (const r of results) if (r.result === 'skipped') log.warn(`guest ${r.vmid}: ${r.error}`);

  // The backup server has nothing left to do: its connection closes while this node's old
  // snapshots go.
  const closed = remote.close();
  await cleanupSource(localZfs, results, scope.yes === true, io.confirm, log);
  await closed;
  recordMetrics(metrics, results, found.failed.length);
  return { kind: 'done', node: state.node, results, failed: found.failed };
}

/** Gauges for --prometheus-textfile: what the run sent, and how many guests ended how. */
function recordMetrics(
  metrics: Metrics | undefined,
  results: readonly GuestResult[],
  unreadable: number,
): void {
  if (!metrics) return;
  metrics.set(
    'zbm_bytes_sent',
    'Bytes sent by the last run.',
    {},
    results.reduce((n, r) => n + r.bytes, 0),
  );
  for (const result of ['ok', 'failed', 'skipped'] as const) {
    const n = results.filter((r) => r.result === result).length + (result === 'failed' ? unreadable : 0);
    metrics.set('zbm_guests', 'Guests of the last run, by result.', { result }, n);
  }
}

/**
 * Destroys the zbm snapshots on this node that the run made obsolete, in one channel program per
 * pool. Needs -y, or a yes on the terminal; a held snapshot is kept and reported, never a failure.
 */
async function cleanupSource(
  zfs: Zfs,
  results: readonly GuestResult[],
  yes: boolean,
  confirm: (question: string) => Promise<boolean>,
  log: BackupLog,
): Promise<void> {
  const names = results.flatMap((r) => r.obsolete);
  if (names.length === 0) return;
  if (!yes) {
    const asked = await confirm(
      `Destroy ${names.length} old zbm snapshot(s) on this node?\n  ${names.join('\n  ')}\n`,
    );
    if (!asked) {
      log.warn(
        `${names.length} old zbm snapshot(s) kept on this node: run with -y to destroy them (${names.join(', ')})`,
      );
      return;
    }
  }
  const outcomes = await zfs.batch(
    names.map((snapshot) => ({ kind: 'destroy-snapshot', snapshot })),
    (message) => log.info(message),
  );
  const destroyed = new Map<string, string[]>();
  for (const [i, n] of names.entries()) {
    const outcome = outcomes[i];
    if (outcome?.ok) {
      const { dataset, snapshot } = splitSnapshot(n);
      destroyed.set(dataset, [...(destroyed.get(dataset) ?? []), snapshot]);
    } else if (outcome?.busy) log.info(`kept ${n}: it is held (zfs holds ${n})`);
    else log.error(`destroying old snapshot ${n}: ${outcome?.error ?? 'no result'}`);
  }
  for (const [ds, shorts] of destroyed) {
    log.info(`destroyed ${shorts.length} old snapshot(s) of ${ds}: ${shorts.join(', ')}`);
  }
}
