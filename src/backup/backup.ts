import { forEachLimited } from '../concurrency.ts';
import { holdTag, isHoldTagFrom, snapshotName, targetDataset } from '../conventions/names.ts';
import { errorMessage } from '../errors.ts';
import type { Host } from '../host/host.ts';
import type { RateLimiter } from '../host/rate.ts';
import { acquire, describeHolder, describeWait } from '../lock/lock.ts';
import { buildManifest } from '../metadata/manifest.ts';
import { metadataPaths } from '../metadata/store.ts';
import { type FileToWrite, writeFileAtomic, writeFilesAtomic } from '../metadata/write.ts';
import type { GuestDisk } from '../pve/disks.ts';
import type { Guest } from '../pve/index.ts';
import { lockDecision, lockedMessage, planLocks } from '../pve/locks.ts';
import { isProxmoxSnapshot } from '../pve/volumes.ts';
import { moveHold } from '../transfer/protect.ts';
import { sendEach } from '../transfer/send-loop.ts';
import { type SyncResult, syncDataset } from '../transfer/sync.ts';
import { poolOf } from '../zfs/names.ts';
import type { Dataset, Hold } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';
import { pingAgent, withFrozenGuest } from './freeze.ts';

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
  /** Disks sent at the same time (1: one after the other). */
  readonly jobs?: number;
  readonly limiter?: RateLimiter;
  readonly log: BackupLog;
  readonly now: () => Date;
  readonly onProgress?: (label: string, bytes: number) => void;
  /**
   * The guest's Proxmox lock as its config says now: read again right before its snapshot (and
   * freeze), so that a vzdump, snapshot or migration that began during the run is left alone.
   */
  readonly currentLock?: (guest: Guest) => Promise<string | null>;
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

/** A guest whose disks can be backed up: the ones that exist here, and where each goes. */
export interface PreparedGuest {
  readonly guest: Guest;
  readonly disks: readonly GuestDisk[];
  /** source dataset → target dataset */
  readonly targets: ReadonlyMap<string, string>;
}

/**
 * Which of a guest's disks this run backs up, and where. Pure: the warnings are returned for the
 * executor to log; a guest with nothing to back up ends here, skipped or failed.
 */
export function prepareGuest(
  guest: Guest,
  sourceListing: ReadonlyMap<string, Dataset>,
  remoteZfsRoot: string,
  node: string,
):
  | { readonly prepared: PreparedGuest; readonly warnings: readonly string[] }
  | { readonly result: 'failed' | 'skipped'; readonly error: string; readonly warnings: readonly string[] } {
  const warnings: string[] = [];
  const disks = guest.disks.filter((d) => {
    if (sourceListing.has(d.dataset)) return true;
    warnings.push(
      `${guestLabel(guest)}: disk ${d.key} (${d.value}): dataset ${d.dataset} does not exist on ${node}; not backed up`,
    );
    return false;
  });
  if (disks.length === 0) return { result: 'skipped', error: 'no disk that zbm can back up', warnings };
  const targets = new Map(disks.map((d) => [d.dataset, targetDataset(remoteZfsRoot, d.dataset)]));
  if (new Set(targets.values()).size !== targets.size) {
    return {
      result: 'failed',
      error: 'two of its disks would have the same name on the backup server',
      warnings,
    };
  }
  return { prepared: { guest, disks, targets }, warnings };
}

function guestLabel(guest: Guest): string {
  return `guest ${guest.vmid}${guest.name ? ` (${guest.name})` : ''}`;
}

/**
 * The `zfs snapshot` calls for the guests that need no freeze: one per pool (in practice one per
 * run, every disk being under --local-zfs-root), each atomic over all its guests' disks. A guest
 * whose disks span pools could not get one atomic snapshot anyway; it is grouped by its set of
 * pools, so its call fails alone. Pure.
 */
export function snapshotBatches(guests: readonly PreparedGuest[]): PreparedGuest[][] {
  const byPools = new Map<string, PreparedGuest[]>();
  for (const g of guests) {
    const key = [...new Set(g.disks.map((d) => poolOf(d.dataset)))].sort().join(' ');
    byPools.set(key, [...(byPools.get(key) ?? []), g]);
  }
  return [...byPools.values()];
}

/**
 * Runs action once for all items; when that fails, each once per item, so that the item at fault
 * fails alone and the others go on. The per-item errors are returned by index (none: all went
 * through). Only for actions that may be repeated: each one here is idempotent or all-or-nothing.
 */
async function batchThenEach<T>(
  items: readonly T[],
  action: (items: readonly T[]) => Promise<void>,
  log: BackupLog,
  what: string,
  each: (item: T) => Promise<void> = (item) => action([item]),
  retrySingle = false,
): Promise<Map<number, string>> {
  const errors = new Map<number, string>();
  if (items.length === 0) return errors;
  try {
    await action(items);
    return errors;
  } catch (err) {
    if (items.length === 1 && !retrySingle) {
      errors.set(0, errorMessage(err));
      return errors;
    }
    log.debug(
      `${what} for ${items.length} guest(s) at once failed (${errorMessage(err)}); one guest at a time`,
    );
  }
  for (const [i, item] of items.entries()) {
    try {
      await each(item);
    } catch (err) {
      errors.set(i, errorMessage(err));
    }
  }
  return errors;
}

/** One guest's way through the run. */
interface GuestRun {
  readonly guest: Guest;
  readonly label: string;
  prepared: PreparedGuest | null;
  /** From its snapshot to its last disk sent: the run-wide steps after the sends are not its own. */
  started: number;
  finished: number | null;
  snapshot: string | null;
  at: Date | null;
  frozen: boolean;
  disks: DiskResult[];
  synced: { source: Dataset; target: string; sync: SyncResult }[];
  obsolete: string[];
  /** Set when the guest ended early (skipped, or failed before any disk was sent). */
  end: { result: 'failed' | 'skipped'; error: string } | null;
  metadataError?: string;
}

/**
 * Backs up the guests of a run. Every guest's lock is taken first, for the whole run: from its
 * snapshot to its metadata nothing else may work on it. Then, per run rather than per guest: one
 * atomic `zfs snapshot` of all the disks of the guests that need no freeze (a guest frozen through
 * its agent gets its own, taken while frozen), one `zfs list` of the fresh snapshots, each disk
 * sent (resuming an interrupted transfer first), then at the same time the new common snapshots
 * held on both sides and bookmarked here (protectBases' steps, once for the run) and every guest's
 * config and manifest written beside the data in one command. A step done for all guests at once that fails is redone
 * guest by guest, so that one guest's failure is its own and never stops the others.
 */
export async function backupGuests(
  ctx: BackupContext,
  guests: readonly Guest[],
  sourceListing: ReadonlyMap<string, Dataset>,
  targetListing: ReadonlyMap<string, Dataset>,
): Promise<GuestResult[]> {
  const { log } = ctx;
  const runStart = Date.now();
  // A guest Proxmox has locked is left alone before zbm takes its own lock on it.
  const locks = planLocks(guests);
  const lockedOut = new Map(locks.skipped.map((s) => [s.guest, s.message]));
  for (const n of locks.notes)
    log.info(`${guestLabel(n.guest)}: locked by Proxmox (lock: ${n.lock}), backed up all the same: ${n.why}`);
  const runs: GuestRun[] = guests.map((guest) => ({
    guest,
    label: guestLabel(guest),
    prepared: null,
    started: runStart,
    finished: null,
    snapshot: null,
    at: null,
    frozen: false,
    disks: [],
    synced: [],
    obsolete: [],
    end: lockedOut.has(guest) ? { result: 'skipped', error: lockedOut.get(guest) as string } : null,
  }));
  const active = () => runs.filter((r) => r.end === null);

  // All at once, so that the wait for a guest held elsewhere is --lock-wait for the run, not per guest.
  const acquired = await Promise.all(
    runs.map((r) =>
      r.end !== null
        ? null
        : acquire(`guest-${r.guest.vmid}`, `backup-pve of guest ${r.guest.vmid}`, ctx.lockWaitMs, (h, ms) =>
            log.info(describeWait(`guest ${r.guest.vmid}`, h, ms)),
          ),
    ),
  );
  try {
    for (const [i, r] of runs.entries()) {
      if (r.end !== null) continue;
      const a = acquired[i];
      if (a && 'heldBy' in a) {
        r.end = {
          result: 'skipped',
          error: `skipped: ${describeHolder(a.heldBy)} is working on this guest; it is backed up on the next run`,
        };
        continue;
      }
      const p = prepareGuest(r.guest, sourceListing, ctx.remoteZfsRoot, ctx.node);
      for (const w of p.warnings) log.warn(w);
      if ('prepared' in p) r.prepared = p.prepared;
      else r.end = { result: p.result, error: p.error };
    }

    // The holds on the backup server's old bases are looked up while the snapshots are taken and
    // sent, so that moving them to the new bases afterwards is one `zfs hold` and one `zfs release`.
    const heldBefore = heldOnServer(active(), targetListing);
    const earlyHolds = ctx.remoteZfs.holds([...heldBefore.values()].flat()).catch(() => undefined);
    await takeSnapshots(ctx, active());
    await sendAll(ctx, active(), targetListing);
    // Side by side: the configs go to the backup server while the bases are held and bookmarked,
    // and neither step's outcome changes what the other does.
    const sent = active();
    await Promise.all([
      earlyHolds.then((known) => protectAll(ctx, sent, targetListing, heldBefore, known)),
      writeAllMetadata(ctx, sent),
    ]);
  } finally {
    for (const a of acquired) if (a && 'lock' in a) a.lock.release();
  }
  return runs.map((r) => result(r));
}

/**
 * The snapshots on the backup server that had a hold when the run began, by target of the runs'
 * disks: the ones that may carry the run's tag, to look up early and to release unless still needed.
 */
function heldOnServer(
  runs: readonly GuestRun[],
  targetListing: ReadonlyMap<string, Dataset>,
): Map<string, string[]> {
  return new Map(
    runs.flatMap((r) =>
      [...(r.prepared?.targets.values() ?? [])].map((t): [string, string[]] => [
        t,
        targetListing
          .get(t)
          ?.snapshots.filter((s) => s.userrefs > 0)
          .map((s) => s.name) ?? [],
      ]),
    ),
  );
}

function result(r: GuestRun): GuestResult {
  const { guest } = r;
  const durationMs = (r.finished ?? Date.now()) - r.started;
  if (r.end) {
    return {
      vmid: guest.vmid,
      name: guest.name,
      type: guest.type,
      snapshot: null,
      frozen: false,
      disks: [],
      bytes: 0,
      durationMs,
      result: r.end.result,
      error: r.end.error,
      obsolete: [],
    };
  }
  const bad = r.disks.filter((d) => d.mode === 'failed');
  return {
    vmid: guest.vmid,
    name: guest.name,
    type: guest.type,
    snapshot: r.snapshot,
    frozen: r.frozen,
    disks: r.disks,
    bytes: r.disks.reduce((n, d) => n + d.bytes, 0),
    durationMs,
    result: bad.length === 0 && !r.metadataError ? 'ok' : 'failed',
    error:
      bad.length > 0
        ? `${bad.length} of ${r.disks.length} disk(s) failed: ${bad.map((b) => b.key).join(', ')}`
        : r.metadataError,
    obsolete: r.obsolete,
  };
}

function diskSnapshots(r: GuestRun, snapshot: string): string[] {
  return (r.prepared?.disks ?? []).map((d) => `${d.dataset}@${snapshot}`);
}

/**
 * One atomic snapshot call for the guests without freeze (per pool), then one per frozen guest,
 * taken between its freeze and its thaw. A guest whose snapshot fails ends here, failed.
 */
async function takeSnapshots(ctx: BackupContext, runs: readonly GuestRun[]): Promise<void> {
  const { log } = ctx;
  const fail = (r: GuestRun, err: string) => {
    log.error(`${r.label}: ${err}`);
    r.end = { result: 'failed', error: err };
  };
  const taken = (r: GuestRun, snapshot: string, at: Date, frozen: boolean) => {
    r.snapshot = snapshot;
    r.at = at;
    r.frozen = frozen;
    log.info(
      `${r.label}: snapshot ${snapshot} of ${r.prepared?.disks.length ?? 0} disk(s)${frozen ? ', file systems frozen' : ''}`,
    );
  };

  // Side by side: one config read per guest, right before any of them is snapshotted.
  await Promise.all(runs.map((r) => recheckLock(ctx, r)));
  // Every agent is asked at once, while the other guests are snapshotted: a guest whose agent does
  // not answer costs its timeout once per run, not once per guest in turn.
  const agents = new Map(
    runs.filter((r) => r.guest.freeze && r.end === null).map((r) => [r, pingAgent(ctx.local, r.guest.vmid)]),
  );
  const plain = runs.filter((r) => !r.guest.freeze && r.end === null);
  const byPrepared = new Map(plain.map((r) => [r.prepared, r]));
  for (const batch of snapshotBatches(plain.flatMap((r) => (r.prepared ? [r.prepared] : [])))) {
    const members = batch.map((p) => byPrepared.get(p) as GuestRun);
    const at = ctx.now();
    const snapshot = snapshotName(ctx.prefix, at);
    for (const r of members) r.started = Date.now();
    // All or nothing: a failed call made no snapshot, so the guests can be tried one by one.
    const errors = await batchThenEach(
      members,
      (rs) => ctx.localZfs.snapshot(rs.flatMap((r) => diskSnapshots(r, snapshot))),
      log,
      'zfs snapshot',
    );
    for (const [i, r] of members.entries()) {
      const err = errors.get(i);
      if (err === undefined) taken(r, snapshot, at, false);
      else fail(r, err);
    }
  }

  for (const [r, agent] of agents) {
    // Its turn may come after the other guests' snapshots: read its lock again right before the freeze.
    if (!(await recheckLock(ctx, r))) continue;
    r.started = Date.now();
    const at = ctx.now();
    const snapshot = snapshotName(ctx.prefix, at);
    try {
      const frozen = await withFrozenGuest(ctx.local, r.guest.vmid, agent, log, () =>
        ctx.localZfs.snapshot(diskSnapshots(r, snapshot)),
      );
      taken(r, snapshot, at, frozen);
    } catch (err) {
      fail(r, errorMessage(err));
    }
  }
}

/**
 * Whether the guest is still free of a Proxmox lock that makes zbm stay away; if not, it ends here,
 * skipped. A config that cannot be read now keeps the decision taken at the start of the run.
 */
async function recheckLock(ctx: BackupContext, r: GuestRun): Promise<boolean> {
  if (!ctx.currentLock || r.end !== null) return r.end === null;
  let lock: string | null;
  try {
    lock = await ctx.currentLock(r.guest);
  } catch (err) {
    ctx.log.debug(`${r.label}: reading its lock again: ${errorMessage(err)}`);
    return true;
  }
  if (lock === null) return true;
  const d = lockDecision(lock);
  if (d.action === 'backup') return true;
  r.end = { result: 'skipped', error: lockedMessage(lock, d.why) };
  return false;
}

/** One disk's transfer: its result, and what it left to protect when it went through. */
interface SentDisk {
  readonly disk: DiskResult;
  readonly synced?: GuestRun['synced'][number];
}

/**
 * Lists the fresh snapshots of every guest in one call, then sends each disk, ctx.jobs at a time.
 * A disk's failure is its own: the other disks and guests go on.
 */
async function sendAll(
  ctx: BackupContext,
  runs: readonly GuestRun[],
  targetListing: ReadonlyMap<string, Dataset>,
): Promise<void> {
  const { log } = ctx;
  const fresh = new Map<string, Dataset>();
  const errors = await batchThenEach(
    runs,
    async (rs) => {
      const roots = rs.flatMap((r) => (r.prepared?.disks ?? []).map((d) => d.dataset));
      for (const d of await ctx.localZfs.list({ roots, depth: 1 })) fresh.set(d.name, d);
    },
    log,
    'zfs list',
  );
  for (const [i, r] of runs.entries()) {
    const err = errors.get(i);
    if (err !== undefined) {
      log.error(`${r.label}: ${err}`);
      r.end = { result: 'failed', error: err };
    }
  }

  const select = (short: string) => short.startsWith(ctx.prefix);
  const sending = runs.filter((x) => x.end === null);
  const work = sending.flatMap((r) => (r.prepared?.disks ?? []).map((disk) => ({ r, disk })));
  const left = new Map(sending.map((r) => [r, r.prepared?.disks.length ?? 0]));
  const sent = await sendEach(
    work,
    {
      jobs: ctx.jobs ?? 1,
      failed: ({ r, disk }, err): SentDisk => {
        const target = r.prepared?.targets.get(disk.dataset) ?? '';
        const error = errorMessage(err);
        log.error(`${r.label}: disk ${disk.key} ${disk.dataset} → ${ctx.remote.name}:${target}: ${error}`);
        return {
          disk: {
            key: disk.key,
            source: disk.dataset,
            target,
            mode: 'failed',
            resumed: null,
            bytes: 0,
            error,
          },
        };
      },
      // The guest's last disk: its own duration ends here, not with the run.
      settled: ({ r }) => {
        const n = (left.get(r) ?? 0) - 1;
        left.set(r, n);
        if (n === 0) r.finished = Date.now();
      },
    },
    async ({ r, disk }, takeStream): Promise<SentDisk> => {
      const target = r.prepared?.targets.get(disk.dataset) ?? '';
      const source = fresh.get(disk.dataset) ?? null;
      const streamEnded = await takeStream();
      const sync = await syncDataset(
        { zfs: ctx.localZfs, dataset: disk.dataset, listing: source },
        { zfs: ctx.remoteZfs, dataset: target, listing: targetListing.get(target) ?? null },
        {
          select,
          limiter: ctx.limiter,
          onProgress: (b) => ctx.onProgress?.(`${r.label} ${disk.key}`, b),
          onMessage: (m) => log.warn(`${r.label}: ${m}`),
          // The backup server's prune waits for (or skips) a dataset while this receive runs.
          receiveLock: { what: 'backup-pve', waitSeconds: ctx.lockWaitMs / 1000 },
          onStreamsEnd: streamEnded,
        },
      );
      return {
        disk: {
          key: disk.key,
          source: disk.dataset,
          target,
          mode: sync.mode,
          resumed: sync.resumed,
          bytes: sync.bytes,
        },
        synced: source ? { source, target, sync } : undefined,
      };
    },
  );
  // In the order of the work, so that a guest's disks keep their order in its result and manifest
  // whatever order the transfers end in.
  for (const [i, { r }] of work.entries()) {
    const s = sent[i];
    if (!s) continue;
    r.disks.push(s.disk);
    if (s.synced) r.synced.push(s.synced);
  }
  for (const r of sending) r.finished ??= Date.now();
}

/** `zfs destroy` takes one bookmark per call: a few at a time, not hundreds of processes at once. */
const BOOKMARK_CONCURRENCY = 4;

/** The hold tags backup-pve ever put on a node's snapshots (`zbm-base:pve:<remote>`), whatever the remote. */
function isNodeHoldTag(tag: string): boolean {
  return isHoldTagFrom(tag, PVE_SOURCE);
}

/** One disk sent this run, and what stays of it on both sides (docs/proxmox.md). */
interface Protection {
  readonly run: GuestRun;
  /** zbm's snapshots of the node dataset to destroy once the base is held (with -y). */
  readonly obsolete: readonly string[];
  /** Snapshots on the backup server to hold: the ones whose guid the node keeps. */
  readonly hold: readonly string[];
  /** Node snapshots that carry a hold (an earlier zbm held its base on the node): to release. */
  readonly nodeHeld: readonly string[];
  /** zbm bookmarks on the node (an earlier zbm bookmarked its base): to destroy. */
  readonly nodeBookmarks: readonly string[];
}

/**
 * What a synced disk leaves behind. On the node: zbm's snapshots only, never a hold (it would make
 * Proxmox's `zfs destroy -r` fail) nor a bookmark (one newer than a rollback target passes Proxmox's
 * check and then makes `zfs rollback` fail, leaving the guest stopped and locked). On the backup
 * server: a hold on every snapshot whose guid the node keeps, so that whatever the node does next
 * (a rollback to before its newest backup keeps an older zbm snapshot), the base is there. Pure.
 */
export function protection(
  source: Dataset,
  target: string,
  targetBefore: Dataset | null,
  sync: Pick<SyncResult, 'common' | 'sent'>,
  prefix: string,
  keepSource: number,
): Omit<Protection, 'run'> {
  const onServer = new Map<string, string>();
  for (const s of targetBefore?.snapshots ?? []) onServer.set(s.guid, s.name);
  for (const short of sync.sent) {
    const s = source.snapshots.find((x) => x.short === short);
    if (s) onServer.set(s.guid, `${target}@${short}`);
  }
  onServer.set(sync.common.guid, `${target}@${sync.common.short}`);
  const obsolete = obsoleteSnapshots(source, sync.common.short, prefix, keepSource, new Set(onServer.keys()));
  const gone = new Set(obsolete);
  const kept = source.snapshots.filter((s) => s.short.startsWith(prefix) && !gone.has(s.name));
  const hold = [
    ...new Set(kept.flatMap((s) => onServer.get(s.guid) ?? []).concat(onServer.get(sync.common.guid) ?? [])),
  ];
  return {
    obsolete,
    hold,
    nodeHeld: source.snapshots.filter((s) => s.userrefs > 0).map((s) => s.name),
    nodeBookmarks: source.bookmarks.filter((b) => b.short.startsWith(prefix)).map((b) => b.name),
  };
}

/**
 * Protects every new base of the run on the backup server (the holds moved in one `zfs holds`,
 * `hold` and `release`), then clears what an earlier zbm left on the node: its holds (one `zfs
 * holds` and `release`, none when no snapshot there has a hold) and its bookmarks (one call each).
 * Only a guest whose bases are held on the backup server gets its obsolete snapshots on the list
 * to destroy: without a protected base, nothing is destroyed on the node.
 */
async function protectAll(
  ctx: BackupContext,
  runs: readonly GuestRun[],
  targetListing: ReadonlyMap<string, Dataset>,
  /** heldOnServer's answer: what may carry the tag now, released unless held again. */
  heldBefore: ReadonlyMap<string, readonly string[]>,
  earlyHolds: readonly Hold[] | undefined,
): Promise<void> {
  const { log } = ctx;
  const withPairs = runs.filter((r) => r.synced.length > 0);
  const plans = new Map(
    withPairs.map((r) => [
      r,
      r.synced.map(({ source, target, sync }) => ({
        run: r,
        ...protection(source, target, targetListing.get(target) ?? null, sync, ctx.prefix, ctx.keepSource),
      })),
    ]),
  );
  const problems = new Map<GuestRun, string>();
  const tag = holdTag(PVE_SOURCE, ctx.remote.name);
  const move = (rs: readonly GuestRun[], known?: readonly Hold[]) => {
    const ps = rs.flatMap((r) => plans.get(r) ?? []);
    return moveHold(
      ctx.remoteZfs,
      tag,
      ps.flatMap((p) => p.hold),
      rs.flatMap((r) => r.synced.flatMap((x) => heldBefore.get(x.target) ?? [])),
      known,
    );
  };
  // Idempotent (holds are looked up again before they are moved), so a failed batch is redone per
  // guest; also for one guest when the batch used the early lookup, which may have gone stale.
  const holdErrors = await batchThenEach(
    withPairs,
    (rs) => move(rs, earlyHolds),
    log,
    'holding the bases on the backup server',
    (r) => move([r]),
    earlyHolds !== undefined,
  );
  for (const [i, err] of holdErrors) problems.set(withPairs[i] as GuestRun, err);

  // What an earlier zbm left on the node. Its failure is reported; the base is safe all the same.
  const leftovers = withPairs.flatMap((r) => plans.get(r) ?? []);
  const cleanup: string[] = [];
  const nodeHeld = leftovers.flatMap((p) => p.nodeHeld);
  try {
    const held = (nodeHeld.length > 0 ? await ctx.localZfs.holds(nodeHeld) : []).filter((h) =>
      isNodeHoldTag(h.tag),
    );
    for (const t of new Set(held.map((h) => h.tag))) {
      await ctx.localZfs.release(
        t,
        held.filter((h) => h.tag === t).map((h) => h.snapshot),
      );
    }
    if (held.length > 0) cleanup.push(`released ${held.length} hold(s) an earlier zbm put on this node`);
  } catch (err) {
    log.error(`releasing the holds an earlier zbm put on this node's snapshots: ${errorMessage(err)}`);
  }
  await forEachLimited(leftovers, BOOKMARK_CONCURRENCY, async (p) => {
    for (const b of p.nodeBookmarks) {
      try {
        await ctx.localZfs.destroyBookmark(b);
        cleanup.push(`destroyed bookmark ${b}`);
      } catch (err) {
        log.error(
          `${p.run.label}: destroying ${b} (an earlier zbm's bookmark: it would make a rollback to an older snapshot fail): ${errorMessage(err)}`,
        );
      }
    }
  });
  for (const c of cleanup) log.info(c);

  for (const r of withPairs) {
    const err = problems.get(r);
    if (err !== undefined) {
      // Without a protected base, nothing is destroyed on the node this run.
      log.error(`${r.label}: holding the new base snapshots on ${ctx.remote.name}: ${err}`);
      continue;
    }
    for (const p of plans.get(r) ?? []) r.obsolete.push(...p.obsolete);
  }
}

/**
 * Writes the config and manifest of every guest with at least one disk sent, in one command. After
 * a failure (or a `zbm serve` too old for the batch), each guest's two files are written one by
 * one, so that a failure names its guest.
 */
async function writeAllMetadata(ctx: BackupContext, runs: readonly GuestRun[]): Promise<void> {
  const { log } = ctx;
  const writers = runs.filter((r) => r.disks.some((d) => d.mode !== 'failed'));
  const files = new Map(writers.map((r) => [r, metadataFiles(ctx, r)]));
  const errors = await batchThenEach(
    writers,
    (rs) =>
      writeFilesAtomic(
        ctx.remote,
        rs.flatMap((r) => files.get(r) ?? []),
      ),
    log,
    'writing the configs and manifests',
    async (r) => {
      for (const f of files.get(r) ?? []) await writeFileAtomic(ctx.remote, f.path, f.content);
    },
    true,
  );
  for (const [i, err] of errors) {
    const r = writers[i] as GuestRun;
    r.metadataError = `writing the config and manifest to ${ctx.remote.name}:${ctx.metadataDir}: ${err}`;
    log.error(`${r.label}: ${r.metadataError}`);
  }
}

/**
 * zbm's snapshots of source that are no longer needed: all but the newest keepSource, the common
 * base, and the rollback anchors, the newest zbm snapshot before each snapshot an administrator
 * took (Proxmox's own snapshots aside) when the backup server has it (onServer, by guid). After
 * `qm rollback` to that snapshot the anchor is still on the node: the base from which a new chain
 * beside the old one can start without sending the whole disk again (not built yet). Pure.
 */
export function obsoleteSnapshots(
  source: Dataset,
  common: string,
  prefix: string,
  keepSource: number,
  onServer: ReadonlySet<string> = new Set(),
): string[] {
  const ours = source.snapshots.filter((s) => s.short.startsWith(prefix));
  const keep = new Set(ours.slice(Math.max(0, ours.length - keepSource)).map((s) => s.short));
  keep.add(common);
  let last: Dataset['snapshots'][number] | null = null;
  for (const s of [...source.snapshots].sort((a, b) => a.createtxg - b.createtxg)) {
    if (s.short.startsWith(prefix)) last = s;
    else if (!isProxmoxSnapshot(s.short) && last && onServer.has(last.guid)) keep.add(last.short);
  }
  return ours.filter((s) => !keep.has(s.short)).map((s) => s.name);
}

/** A guest's config and manifest files, for the snapshot it just took. */
function metadataFiles(ctx: BackupContext, r: GuestRun): FileToWrite[] {
  const { guest } = r;
  const snapshot = r.snapshot ?? '';
  const paths = metadataPaths(ctx.metadataDir, guest.vmid, snapshot);
  const fresh = new Map(r.synced.map((s) => [s.source.name, s.source]));
  const manifest = buildManifest({
    vmid: guest.vmid,
    type: guest.type,
    name: guest.name,
    node: ctx.node,
    snapshot,
    time: (r.at ?? new Date()).toISOString(),
    frozen: r.frozen,
    disks: r.disks
      .filter((d) => d.mode !== 'failed')
      .map((d) => {
        const snap = fresh.get(d.source)?.snapshots.find((s) => s.short === snapshot);
        const disk = guest.disks.find((x) => x.key === d.key);
        return {
          key: d.key,
          // From the parsed disk: a CT's value may start with other properties (`acl=0,volume=...`).
          volume: disk ? `${disk.storage}:${disk.volname}` : '',
          source: d.source,
          target: d.target,
          guid: snap?.guid ?? '',
          referenced: snap?.referenced ?? 0,
          bytesSent: d.bytes,
          mode: d.mode,
        };
      }),
    missing: [
      ...r.disks.filter((d) => d.mode === 'failed').map((d) => ({ key: d.key, reason: d.error ?? 'failed' })),
      ...guest.skipped.filter((s) => s.warn).map((s) => ({ key: s.key, reason: s.reason })),
    ],
  });
  return [
    { path: paths.config, content: guest.configText },
    { path: paths.manifest, content: `${JSON.stringify(manifest, null, 2)}\n` },
  ];
}
