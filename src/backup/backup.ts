/**
 * backup-pve's job: takes every guest's lock, then runs the steps in order (snapshots.ts, send.ts,
 * then protect-bases.ts beside write-metadata.ts) and turns each guest's state into its result.
 * Only the order of the steps and the locks live here; each step is in its own module.
 */
import { families } from '../conventions/names.ts';
import { acquire, describeHolder, describeWait } from '../lock/lock.ts';
import type { Guest } from '../pve/index.ts';
import { planLocks } from '../pve/locks.ts';
import type { Dataset } from '../zfs/types.ts';
import type { BackupContext, GuestResult, GuestRun } from './context.ts';
import { guestLabel, prepareGuest } from './guest.ts';
import { heldOnServer, protectAll } from './protect-bases.ts';
import { listFresh, sendAll } from './send.ts';
import { takeSnapshots, undoSnapshots } from './snapshots.ts';
import { writeAllMetadata } from './write-metadata.ts';

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
  /** The backup server's listing, and its root ready: may still be on its way when the run starts. */
  targetListing: ReadonlyMap<string, Dataset> | Promise<ReadonlyMap<string, Dataset>>,
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
    listed: new Map(),
    obsolete: [],
    end: lockedOut.has(guest) ? { result: 'skipped', error: lockedOut.get(guest) as string } : null,
  }));
  const active = () => runs.filter((r) => r.end === null);
  const server = { failed: false };
  Promise.resolve(targetListing).catch(() => {
    server.failed = true;
  });

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

    // The snapshots and their listing need nothing from the backup server: they are taken while its
    // listing is still on its way (the ssh connection's set-up is most of an idle run's time),
    // unless it has failed already.
    if (server.failed) await targetListing;
    await takeSnapshots(ctx, active());
    const fresh = await listFresh(ctx, active());
    let target: ReadonlyMap<string, Dataset>;
    try {
      target = await targetListing;
    } catch (err) {
      await undoSnapshots(ctx, runs);
      throw err;
    }
    // The holds on the backup server's old bases are looked up while the disks are sent, so that
    // moving them to the new bases afterwards is one command (zfs/move-hold.ts).
    const chains = families([...target.values()], ctx.prefix);
    const heldBefore = heldOnServer(active(), chains);
    const earlyHolds = ctx.remoteZfs.holds([...heldBefore.values()].flat()).catch(() => undefined);
    await sendAll(ctx, active(), chains, sourceListing, fresh);
    // Side by side: the configs go to the backup server while the bases are held and bookmarked,
    // and neither step's outcome changes what the other does.
    const sent = active();
    await Promise.all([
      earlyHolds.then((known) => protectAll(ctx, sent, chains, heldBefore, known)),
      writeAllMetadata(ctx, sent),
    ]);
  } finally {
    for (const a of acquired) if (a && 'lock' in a) a.lock.release();
  }
  return runs.map((r) => result(r));
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
