import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatAge } from '../../src/text/human.ts';
import { zoneFromTz } from '../../src/time/zone.ts';
import {
  checkDataset,
  checkGuest,
  checkPool,
  checkPveGuest,
  checkReplication,
  type PoolCreation,
  type PoolStatus,
  parseZpoolStatus,
  perfData,
  type State,
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

  it('reads a scrub under way, and a pool that shows none', () => {
    const running = parseZpoolStatus(
      [
        '  pool: main',
        ' state: ONLINE',
        '  scan: scrub in progress since Sun Nov  8 00:24:01 2026',
        '\t1.23G / 2.00G scanned at 100M/s, 1.00G / 2.00G issued at 80M/s',
        '\t0B repaired, 50.00% done, 00:00:12 to go',
        'config:',
      ].join('\n'),
      zoneFromTz('UTC'),
    );
    assert.equal(running.lastScrub, null);
    assert.equal(running.scrubRunningSince, Date.UTC(2026, 10, 8, 0, 24, 1) / 1000);
    const none = parseZpoolStatus('  pool: main\n state: ONLINE\n  scan: none requested\nconfig:\n');
    assert.deepEqual([none.lastScrub, none.scrubRunningSince], [null, null]);
    const finished = parseZpoolStatus(
      '  pool: main\n state: ONLINE\n  scan: scrub repaired 0B in 1 days 02:03:04 with 0 errors on Sun Nov  8 00:24:01 2026\n',
      zoneFromTz('UTC'),
    );
    assert.deepEqual(
      [finished.lastScrub, finished.scrubRunningSince],
      [Date.UTC(2026, 10, 8, 0, 24, 1) / 1000, null],
    );
  });

  it('judges the scrub age, and a pool never scrubbed by its age against the same limit', () => {
    const DAY = 86_400;
    const online = { pool: 'main', health: 'ONLINE' };
    const degraded = {
      pool: 'main',
      health: 'DEGRADED',
      status: 'One or more devices has been taken offline',
    };
    const limit = /--max-scrub-age-days \(35\.0 d\)/.source;
    const cases: {
      name: string;
      p: PoolStatus;
      created?: PoolCreation;
      state: State;
      message: RegExp;
      figures: Record<string, number | string | null>;
    }[] = [
      {
        name: 'scrubbed recently',
        p: { ...online, lastScrub: NOW - 2 * DAY },
        state: 'OK',
        message: /^ONLINE, last scrub 2 days ago$/,
        figures: { health: 'ONLINE', scrub: 'finished', scrub_age_seconds: 2 * DAY, pool_age_seconds: null },
      },
      {
        name: 'scrubbed long ago',
        p: { ...online, lastScrub: NOW - 40 * DAY },
        state: 'WARNING',
        message: new RegExp(`^last scrub 40 days ago, longer ago than ${limit}: run zpool scrub main$`),
        figures: { health: 'ONLINE', scrub: 'finished', scrub_age_seconds: 40 * DAY, pool_age_seconds: null },
      },
      {
        name: 'never scrubbed, a new pool',
        p: { ...online, lastScrub: null },
        created: { at: NOW - 600 },
        state: 'OK',
        message: new RegExp(`^ONLINE, never scrubbed: the pool is 10 min old, younger than ${limit}$`),
        figures: { health: 'ONLINE', scrub: 'never', scrub_age_seconds: null, pool_age_seconds: 600 },
      },
      {
        name: 'never scrubbed, exactly as old as the limit',
        p: { ...online, lastScrub: null },
        created: { at: NOW - 35 * DAY },
        state: 'OK',
        message: /^ONLINE, never scrubbed: the pool is 35\.0 d old/,
        figures: { health: 'ONLINE', scrub: 'never', scrub_age_seconds: null, pool_age_seconds: 35 * DAY },
      },
      {
        name: 'never scrubbed, older than the limit',
        p: { ...online, lastScrub: null },
        created: { at: NOW - 36 * DAY },
        state: 'WARNING',
        message: new RegExp(
          `^never scrubbed, and the pool is 36\\.0 d old, older than ${limit}: run zpool scrub main$`,
        ),
        figures: { health: 'ONLINE', scrub: 'never', scrub_age_seconds: null, pool_age_seconds: 36 * DAY },
      },
      {
        name: 'never scrubbed, its age unreadable',
        p: { ...online, lastScrub: null },
        created: { error: 'zfs get on zbm-dest failed: only zpool status main is served' },
        state: 'WARNING',
        message:
          /^never scrubbed, and the age of the pool is unknown \(zfs get on zbm-dest failed: only zpool status main is served\): run zpool scrub main$/,
        figures: { health: 'ONLINE', scrub: 'never', scrub_age_seconds: null, pool_age_seconds: null },
      },
      {
        name: 'a scrub under way',
        p: { ...online, lastScrub: null, scrubRunningSince: NOW - 3 * 3600 },
        state: 'OK',
        message: /^ONLINE, a scrub is running, started 3\.0 h ago$/,
        figures: { health: 'ONLINE', scrub: 'running', scrub_age_seconds: null, pool_age_seconds: null },
      },
      {
        name: 'a scrub under way for longer than the limit',
        p: { ...online, lastScrub: null, scrubRunningSince: NOW - 36 * DAY },
        state: 'WARNING',
        message: new RegExp(
          `^a scrub has been running for 36\\.0 d, longer than ${limit}: see zpool status main$`,
        ),
        figures: { health: 'ONLINE', scrub: 'running', scrub_age_seconds: null, pool_age_seconds: null },
      },
      {
        name: 'degraded, scrubbed recently',
        p: { ...degraded, lastScrub: NOW - DAY },
        state: 'CRITICAL',
        message: /^pool is DEGRADED: One or more devices has been taken offline \(zpool status -v main\)$/,
        figures: { health: 'DEGRADED', scrub: 'finished', scrub_age_seconds: DAY, pool_age_seconds: null },
      },
      {
        name: 'degraded, never scrubbed, a new pool',
        p: { ...degraded, lastScrub: null },
        created: { at: NOW - 600 },
        state: 'CRITICAL',
        message: /^pool is DEGRADED: /,
        figures: { health: 'DEGRADED', scrub: 'never', scrub_age_seconds: null, pool_age_seconds: 600 },
      },
    ];
    for (const c of cases) {
      const got = checkPool(c.p, 35 * DAY, NOW, c.created);
      assert.equal(got.state, c.state, c.name);
      assert.equal(got.subject, 'pool main', c.name);
      assert.match(got.message, c.message, c.name);
      assert.deepEqual(got.figures, c.figures, c.name);
    }
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

  it('gives the age of a pool never scrubbed as pool_age, with the scrub limit, and no scrub_age', () => {
    const a = snap('bak-1', 7200);
    const b = snap('bak-2', 3600);
    const pool = (p: PoolStatus, created?: PoolCreation) => checkPool(p, 35 * 86400, NOW, created);
    const never = { pool: 'p', health: 'ONLINE', lastScrub: null };
    assert.equal(
      perfData([checkDataset(ds([a, b]), rules, NOW), pool(never, { at: NOW - 600 })], rules, 35 * 86400),
      'datasets=1;;;0 backup_age=3600s;;86400;0 snapshots=2;2:;;0 pool_age=600s;3024000;;0',
    );
    // Neither figure when there is nothing to say: a scrub under way, an age that could not be read.
    assert.equal(perfData([pool({ ...never, scrubRunningSince: NOW - 60 })], rules, 86400), '');
    assert.equal(perfData([pool(never, { error: 'x' })], rules, 86400), '');
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
