/**
 * The snapshot step of a run: the guests without freeze get one atomic `zfs snapshot` per set of
 * pools, each guest frozen through its agent gets its own between freeze and thaw, and every guest's
 * Proxmox lock is read again right before, so a guest Proxmox began working on meanwhile is left
 * alone. Kept apart because it is the only step that touches the guests themselves.
 */
import { snapshotName } from '../conventions/names.ts';
import { errorMessage } from '../errors.ts';
import { pingAgent, withFrozenGuest } from '../pve/freeze.ts';
import { lockDecision, lockedMessage } from '../pve/locks.ts';
import { TEMPLATE_SNAPSHOT } from '../pve/volumes.ts';
import { poolOf } from '../zfs/names.ts';
import { batchThenEach } from './batch.ts';
import type { BackupContext, GuestRun } from './context.ts';
import type { PreparedGuest } from './guest.ts';

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

function diskSnapshots(r: GuestRun, snapshot: string): string[] {
  return (r.prepared?.disks ?? []).map((d) => `${d.dataset}@${snapshot}`);
}

/**
 * One atomic snapshot call for the guests without freeze (per pool), then one per frozen guest,
 * taken between its freeze and its thaw. A guest whose snapshot fails ends here, failed.
 */
export async function takeSnapshots(ctx: BackupContext, runs: readonly GuestRun[]): Promise<void> {
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
  // A template never changes and is never running: the snapshot Proxmox made of it is its backup.
  const templates = runs.filter((r) => r.prepared?.template && r.end === null);
  for (const r of templates) {
    const created = r.prepared?.template?.created ?? ctx.now();
    r.started = Date.now();
    r.snapshot = snapshotName(ctx.prefix, created);
    r.at = created;
    log.info(
      `${r.label}: a template: no snapshot is taken; its disks' @${TEMPLATE_SNAPSHOT} are backed up once, as ${r.snapshot}`,
    );
  }
  const rest = runs.filter((r) => !templates.includes(r) && r.end === null);
  const agents = new Map(
    rest.filter((r) => r.guest.freeze).map((r) => [r, pingAgent(ctx.local, r.guest.vmid)]),
  );
  const plain = rest.filter((r) => !r.guest.freeze);
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

/**
 * Destroys the snapshots this run took, when the backup server cannot be used at all (its listing,
 * or its root, failed): none of them was sent or is a base of anything, and the node is left as
 * the run found it, rather than gaining a snapshot every hour that the server stays away. A
 * template's snapshot is Proxmox's, never this run's.
 */
export async function undoSnapshots(ctx: BackupContext, runs: readonly GuestRun[]): Promise<void> {
  const names = runs.flatMap((r) =>
    r.snapshot !== null && !r.prepared?.template ? diskSnapshots(r, r.snapshot) : [],
  );
  if (names.length === 0) return;
  const outcomes = await ctx.localZfs.batch(
    names.map((snapshot) => ({ kind: 'destroy-snapshot', snapshot })),
  );
  const failed = names.flatMap((n, i) =>
    outcomes[i]?.ok ? [] : [`${n} (${outcomes[i]?.error ?? 'no result'})`],
  );
  const undone = names.length - failed.length;
  if (undone > 0) ctx.log.info(`destroyed the ${undone} snapshot(s) this run took: nothing could be sent`);
  if (failed.length > 0)
    ctx.log.error(
      `the snapshot(s) this run took could not be destroyed; the next run sends them: ${failed.join(', ')}`,
    );
}
