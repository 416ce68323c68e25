import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkDataset,
  checkGuest,
  checkPool,
  checkPveGuest,
  checkReplication,
  formatAge,
  parseZpoolStatus,
  perfData,
  worst,
} from '../../src/verify/checks.ts';
import type { Dataset, Snapshot } from '../../src/zfs/types.ts';
import { dataset, snapshot } from '../support/zfs.ts';

const NOW = 1_800_000_000;
let txg = 1;
function snap(short: string, ageSeconds: number, guid = `g-${short}`): Snapshot {
  return snapshot('p/d', short, { guid, createtxg: txg++, creation: NOW - ageSeconds });
}
function ds(snapshots: Snapshot[], resumeToken: string | null = null): Dataset {
  return dataset('p/d', snapshots, { resumeToken });
}
const rules = { prefix: 'bak-', maxAgeSeconds: 86400, minSnapshots: 2 };

describe('verify checks', () => {
  it('grades freshness and count', () => {
    assert.equal(checkDataset(ds([snap('bak-1', 7200), snap('bak-2', 3600)]), rules, NOW).state, 'OK');
    const stale = checkDataset(ds([snap('bak-1', 200000), snap('bak-2', 90000)]), rules, NOW);
    assert.equal(stale.state, 'CRITICAL');
    assert.match(stale.message, /25\.0 h old, limit 24\.0 h/);
    const few = checkDataset(ds([snap('bak-2', 3600)]), rules, NOW);
    assert.equal(few.state, 'WARNING');
    assert.match(few.message, /1 snapshots, fewer than 2/);
    assert.equal(
      checkDataset(ds([snap('manual', 10)]), rules, NOW).state,
      'CRITICAL',
      'other snapshots do not count',
    );
    assert.equal(
      checkDataset(ds([snap('bak-1', 7200), snap('bak-2', 3600)], '1-abc'), rules, NOW).state,
      'WARNING',
    );
  });

  it('is CRITICAL about a snapshot named for the future or out of the pool order, and does not count it as fresh', () => {
    const day = 86_400;
    const stamp = (s: number) =>
      `bak-${new Date(s * 1000)
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z')}`;
    const old = [snap(stamp(NOW - 3 * day), 3 * day), snap(stamp(NOW - 2 * day), 2 * day)];
    // Received last, named for 2099, its creation a minute ago: it must not make the dataset look fresh.
    const planted = checkDataset(ds([...old, snap('bak-20991225T000000Z', 60)]), rules, NOW);
    assert.equal(planted.state, 'CRITICAL');
    assert.match(
      planted.message,
      /1 snapshot\(s\) not to be trusted .*bak-20991225T000000Z named for 2099-12-25T00:00:00Z, in the future/,
    );
    assert.match(planted.message, /newest backup is 2\.0 d old/);
    assert.equal(planted.figures.newest, stamp(NOW - 2 * day));
    const backwards = checkDataset(ds([...old, snap(stamp(NOW - 10 * day), 60)]), rules, NOW);
    assert.equal(backwards.state, 'CRITICAL');
    assert.match(backwards.message, /earlier than .*which this pool received before it/);
    const honest = checkDataset(ds([...old, snap(stamp(NOW - 60), 60)]), rules, NOW);
    assert.equal(honest.state, 'OK');
  });

  it('measures the replication lag by guid', () => {
    const a = snap('bak-1', 200000);
    const b = snap('bak-2', 3600);
    assert.equal(checkReplication(ds([a, b]), ds([a, b]), 'r', rules, NOW).state, 'OK');
    const lag = checkReplication(ds([a, b]), ds([a, { ...b, guid: 'other' }]), 'r', rules, NOW);
    assert.equal(lag.state, 'CRITICAL');
    assert.match(lag.message, /bak-1/);
    assert.equal(checkReplication(ds([a, b]), null, 'r', rules, NOW).state, 'CRITICAL');
  });

  it('reads zpool status and grades pools', () => {
    const text = `  pool: main\n state: DEGRADED\nstatus: One or more devices has been taken offline\n  scan: scrub repaired 0B in 00:00:01 with 0 errors on Thu Nov 26 11:05:03 2026\nconfig:\n`;
    const p = parseZpoolStatus(text);
    assert.equal(p.pool, 'main');
    assert.equal(p.health, 'DEGRADED');
    assert.equal(new Date((p.lastScrub ?? 0) * 1000).getDate(), 26);
    // A degraded pool is one failure away from losing the backups.
    assert.equal(checkPool(p, 35 * 86400, (p.lastScrub ?? 0) + 100).state, 'CRITICAL');
    assert.equal(checkPool({ ...p, health: 'ONLINE' }, 35 * 86400, (p.lastScrub ?? 0) + 100).state, 'OK');
    assert.equal(
      checkPool({ ...p, health: 'ONLINE' }, 35 * 86400, (p.lastScrub ?? 0) + 40 * 86400).state,
      'WARNING',
    );
    assert.equal(checkPool({ pool: 'x', health: 'FAULTED', lastScrub: null }, 1, 0).state, 'CRITICAL');
    assert.equal(parseZpoolStatus('  pool: x\n state: ONLINE\nconfig:\n').lastScrub, null);
  });

  it('reports disks missing from the newest backup of a guest', () => {
    const m = {
      vmid: 100,
      name: 'web',
      snapshot: 'bak-2',
      disks: [{ key: 'scsi0', target: 'main/b/vm-100-disk-0' }],
      missing: [],
    };
    const id = (t: string) => t;
    assert.equal(checkGuest(m, new Set(['main/b/vm-100-disk-0']), id).state, 'OK');
    assert.equal(checkGuest(m, new Set(), id).state, 'CRITICAL');
    const partial = checkGuest(
      { ...m, missing: [{ key: 'scsi1', reason: 'failed' }] },
      new Set(['main/b/vm-100-disk-0']),
      id,
    );
    assert.equal(partial.state, 'WARNING');
    assert.match(partial.message, /scsi1/);
  });

  it("reads zpool's own status and action text into the message", () => {
    const text = [
      '  pool: lab-m',
      ' state: DEGRADED',
      'status: One or more devices has been taken offline by the administrator.',
      '\tSufficient replicas exist for the pool to continue functioning in a',
      '\tdegraded state.',
      "action: Online the device using 'zpool online' or replace the device with",
      "\t'zpool replace'.",
      '  scan: scrub repaired 0B in 00:00:00 with 0 errors on Thu Nov 26 14:00:00 2026',
      'config:',
    ].join('\n');
    const p = parseZpoolStatus(text);
    assert.equal(
      p.status,
      'One or more devices has been taken offline by the administrator. Sufficient replicas exist for the pool to continue functioning in a degraded state.',
    );
    assert.equal(
      p.action,
      "Online the device using 'zpool online' or replace the device with 'zpool replace'.",
    );
    const c = checkPool(p, 86400, p.lastScrub ?? 0);
    assert.equal(c.state, 'CRITICAL');
    assert.match(
      c.message,
      /^pool is DEGRADED: One or more .* action: Online the device .* \(zpool status -v lab-m\)$/,
    );
  });

  it('prints ages as an administrator reads them', () => {
    assert.deepEqual([3.6, 119, 600, 7199, 9000, 172800 * 2].map(formatAge), [
      '4 s',
      '119 s',
      '10 min',
      '120 min',
      '2.5 h',
      '4.0 d',
    ]);
  });

  it('--pve: a guest never backed up, a disk without backup, a stale disk, a disk zbm cannot take', () => {
    const target = (name: string, snaps: Snapshot[]) => ({ ...ds(snaps), name });
    const remote = new Map([
      ['m/vm-100-disk-0', target('m/vm-100-disk-0', [snap('bak-1', 3600)])],
      ['m/vm-100-disk-1', target('m/vm-100-disk-1', [snap('bak-1', 200000)])],
      ['m/vm-101-disk-0', target('m/vm-101-disk-0', [snap('other', 60)])],
    ]);
    const rules1 = { ...rules, minSnapshots: 1 };
    const g = (vmid: number, keys: string[], unprotected: { key: string; reason: string }[] = []) => ({
      vmid,
      name: `g${vmid}`,
      disks: keys.map((k, i) => ({ key: k, target: `m/vm-${vmid}-disk-${i}` })),
      unprotected,
    });
    const ok = checkPveGuest(g(100, ['scsi0']), remote, 'dest', rules1, NOW);
    assert.equal(ok.state, 'OK');
    assert.match(ok.message, /^1 of 1 disk\(s\) backed up on dest, newest bak-1/);
    const never = checkPveGuest(g(101, ['scsi0']), remote, 'dest', rules1, NOW);
    assert.equal(never.state, 'CRITICAL');
    assert.match(never.message, /^never backed up: no bak-\* snapshot of scsi0 \(m\/vm-101-disk-0\) on dest/);
    const added = checkPveGuest(g(100, ['scsi0', 'scsi1', 'scsi2']), remote, 'dest', rules1, NOW);
    assert.equal(added.state, 'CRITICAL');
    assert.match(added.message, /no backup of scsi2 \(m\/vm-100-disk-2\) on dest/);
    assert.match(added.message, /scsi1 dest:newest backup is 2\.3 d old/);
    const partial = checkPveGuest(
      g(100, ['scsi0'], [{ key: 'sata0', reason: 'not zfspool' }]),
      remote,
      'dest',
      rules1,
      NOW,
    );
    assert.equal(partial.state, 'WARNING');
    assert.match(partial.message, /not backed up by zbm: sata0 \(not zfspool\); .*backup=0/);
    assert.equal(checkPveGuest(g(102, []), remote, 'dest', rules1, NOW).state, 'WARNING');
  });

  it('takes the worst state, UNKNOWN below WARNING', () => {
    assert.equal(worst(['OK', 'UNKNOWN']), 'UNKNOWN');
    assert.equal(worst(['UNKNOWN', 'WARNING', 'OK']), 'WARNING');
    assert.equal(worst(['CRITICAL', 'WARNING']), 'CRITICAL');
    assert.equal(worst([]), 'OK');
  });
});

describe('verify performance data (after "|" of the status line)', () => {
  it('gives the stalest backup age, the fewest snapshots, the largest lag and the oldest scrub, with thresholds', () => {
    const a = snap('bak-1', 7200);
    const b = snap('bak-2', 3600);
    const checks = [
      checkDataset(ds([a, b]), rules, NOW),
      checkDataset(dataset('p/e', [snapshot('p/e', 'bak-3', { creation: NOW - 5000 })]), rules, NOW),
      checkReplication(ds([a, b]), ds([a]), 'r', rules, NOW),
      checkPool({ pool: 'p', health: 'ONLINE', lastScrub: NOW - 86400 }, 35 * 86400, NOW),
    ];
    assert.equal(
      perfData(checks, rules, 35 * 86400),
      'datasets=2;;;0 backup_age=5000s;;86400;0 snapshots=1;2:;;0 replication_lag=7200s;;86400;0 scrub_age=86400s;3024000;;0',
    );
  });

  it('with --pve: guests, disks, disks backed up and the stalest backup', () => {
    const remote = new Map([
      [
        'b/vm-1-disk-0',
        dataset('b/vm-1-disk-0', [snapshot('b/vm-1-disk-0', 'bak-1', { creation: NOW - 60 })]),
      ],
    ]);
    const g = checkPveGuest(
      {
        vmid: 1,
        name: 'a',
        disks: [
          { key: 'scsi0', target: 'b/vm-1-disk-0' },
          { key: 'scsi1', target: 'b/vm-1-disk-1' },
        ],
        unprotected: [],
      },
      remote,
      'dest',
      rules,
      NOW,
    );
    assert.equal(
      perfData([g], rules, 86400),
      'guests=1;;;0 disks=2;;;0 disks_backed_up=1;;;0 backup_age=60s;;86400;0',
    );
    assert.equal(perfData([], rules, 86400), '');
  });
});
