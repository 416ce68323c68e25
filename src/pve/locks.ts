/**
 * Proxmox's guest locks (`lock:` in a guest's config) and what backup-pve does with each. Proxmox
 * writes the lock for the whole of an operation that changes the guest's disks or must not be
 * disturbed; vzdump refuses every locked guest and moves on. zbm does the same for every lock whose
 * operation could collide with a snapshot or a freeze, and goes on only where none can (README,
 * "Living with Proxmox"). Pure.
 */

export interface LockDecision {
  /** skip: no snapshot, no freeze this run; the next run tries again. */
  readonly action: 'skip' | 'backup';
  /** What Proxmox is doing, as the message names it. */
  readonly why: string;
}

const SKIP: Readonly<Record<string, string>> = {
  backup: 'a vzdump backup of it is running (it may hold the file systems frozen)',
  clone: 'it is being cloned',
  create: 'it is being created or restored: its disks are incomplete',
  destroyed: 'it is being destroyed',
  disk: 'one of its disks is being moved, resized or imported',
  migrate: 'it is being migrated to another node',
  mounted: 'its volumes are mounted on the host for maintenance (pct mount)',
  rollback:
    'it is being rolled back to a snapshot, or a failed rollback left it locked (qm unlock / pct unlock once checked)',
  snapshot: 'Proxmox is taking a snapshot of it',
  'snapshot-delete': 'Proxmox is deleting one of its snapshots',
  suspending: 'it is being suspended to disk',
  suspended: 'it is suspended to disk: its disks go with the saved RAM state until it is resumed',
};

/** Locks whose operation leaves the data and the snapshots alone. */
const GO_ON: Readonly<Record<string, string>> = {
  fstrim: 'pct fstrim only discards unused blocks: the files are unchanged',
};

/** Every lock value Proxmox writes, for the documentation's table and the tests. */
export const PROXMOX_LOCKS: readonly string[] = [...Object.keys(SKIP), ...Object.keys(GO_ON)].sort();

/** A guest's lock, from its running config (a snapshot section's `lock:` is not the guest's). */
export function guestLock(current: Readonly<Record<string, string>>): string | null {
  const lock = Object.hasOwn(current, 'lock') ? current.lock?.trim() : undefined;
  return lock ? lock : null;
}

/** What backup-pve does with a guest locked by Proxmox; a lock zbm does not know is skipped. */
export function lockDecision(lock: string): LockDecision {
  if (Object.hasOwn(GO_ON, lock)) return { action: 'backup', why: GO_ON[lock] as string };
  if (Object.hasOwn(SKIP, lock)) return { action: 'skip', why: SKIP[lock] as string };
  return { action: 'skip', why: 'zbm does not know this lock, so it stays away' };
}

/** The message of a skipped guest (backup-pve's result and its warning). */
export function lockedMessage(lock: string, why: string): string {
  return `skipped: locked by Proxmox (lock: ${lock}): ${why}; nothing was snapshotted or frozen, it is retried on the next run`;
}

export interface LockPlan<G> {
  readonly go: readonly G[];
  readonly skipped: readonly { readonly guest: G; readonly lock: string; readonly message: string }[];
  /** Locked guests backed up all the same, with the reason. */
  readonly notes: readonly { readonly guest: G; readonly lock: string; readonly why: string }[];
}

/** Splits a run's guests by their Proxmox lock. */
export function planLocks<G extends { readonly lock: string | null }>(guests: readonly G[]): LockPlan<G> {
  const go: G[] = [];
  const skipped: LockPlan<G>['skipped'][number][] = [];
  const notes: LockPlan<G>['notes'][number][] = [];
  for (const guest of guests) {
    if (guest.lock === null) {
      go.push(guest);
      continue;
    }
    const d = lockDecision(guest.lock);
    if (d.action === 'skip')
      skipped.push({ guest, lock: guest.lock, message: lockedMessage(guest.lock, d.why) });
    else {
      go.push(guest);
      notes.push({ guest, lock: guest.lock, why: d.why });
    }
  }
  return { go, skipped, notes };
}
