import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseGuestConfig } from '../../../src/pve/config.ts';
import { guestLock, lockDecision, PROXMOX_LOCKS, planLocks } from '../../../src/pve/locks.ts';

describe('Proxmox guest locks', () => {
  it('reads the running config’s lock only: a snapshot section’s lock is not the guest’s', () => {
    const locked = parseGuestConfig('lock: backup\nname: web\n\n[before]\nlock: snapshot\n');
    assert.equal(guestLock(locked.current), 'backup');
    const free = parseGuestConfig('name: web\n\n[before]\nlock: snapshot\nsnaptime: 1\n');
    assert.equal(guestLock(free.current), null);
    assert.equal(guestLock(parseGuestConfig('lock:\nname: x\n').current), null);
  });

  it('skips every lock whose operation can collide with a snapshot or a freeze, goes on only for fstrim', () => {
    const skip = [
      'backup',
      'clone',
      'create',
      'destroyed',
      'disk',
      'migrate',
      'mounted',
      'rollback',
      'snapshot',
      'snapshot-delete',
      'suspending',
      'suspended',
    ];
    assert.deepEqual([...PROXMOX_LOCKS].sort(), [...skip, 'fstrim'].sort());
    for (const l of skip) assert.equal(lockDecision(l).action, 'skip', l);
    assert.equal(lockDecision('fstrim').action, 'backup');
    assert.match(lockDecision('backup').why, /vzdump/);
    // A lock a later Proxmox adds: zbm stays away rather than guess.
    assert.deepEqual(lockDecision('hibernate-v2').action, 'skip');
    // Names that are properties of Object.prototype are not locks zbm knows.
    assert.equal(lockDecision('constructor').action, 'skip');
    assert.match(lockDecision('constructor').why, /does not know/);
  });

  it('planLocks keeps the order, names the lock and says the next run retries', () => {
    const gs = [
      { vmid: 100, lock: null },
      { vmid: 101, lock: 'backup' },
      { vmid: 102, lock: 'fstrim' },
      { vmid: 103, lock: 'migrate' },
    ];
    const plan = planLocks(gs);
    assert.deepEqual(
      plan.go.map((g) => g.vmid),
      [100, 102],
    );
    assert.deepEqual(
      plan.skipped.map((s) => [s.guest.vmid, s.lock]),
      [
        [101, 'backup'],
        [103, 'migrate'],
      ],
    );
    assert.match(
      plan.skipped[0]?.message ?? '',
      /^skipped: locked by Proxmox \(lock: backup\): .*retried on the next run$/,
    );
    assert.deepEqual(
      plan.notes.map((n) => [n.guest.vmid, n.lock]),
      [[102, 'fstrim']],
    );
  });
});
