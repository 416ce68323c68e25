import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chainDataset, families, familyOf, targetDataset } from '../../../src/conventions/names.ts';
import { formatAge } from '../../../src/text/human.ts';
import { zoneFromTz } from '../../../src/time/zone.ts';
import {
  checkFamily,
  checkGuest,
  checkPool,
  checkPveGuest,
  checkReplication,
  diskChecks,
  type PoolCreation,
  type PoolStatus,
  parseZpoolStatus,
  perfData,
  replicationChecks,
  type State,
  worst,
} from '../../../src/verify/checks.ts';
import type { Dataset, Snapshot } from '../../../src/zfs/types.ts';
import { dataset, snapshot } from '../../support/zfs.ts';

const NOW = 1_800_000_000;
let txg = 1;
function snap(short: string, ageSeconds: number, guid = `g-${short}`): Snapshot {
  return snapshot('p/d', short, { guid, createtxg: txg++, creation: NOW - ageSeconds });
}
function ds(snapshots: Snapshot[], resumeToken: string | null = null): Dataset {
  return dataset('p/d', snapshots, { resumeToken });
}
const rules = { prefix: 'bak-', maxAgeSeconds: 86400, minSnapshots: 2 };
/** A disk with one chain, as every disk had before later chains. */
function oneChain(d: Dataset, r: typeof rules, now: number) {
  return checkFamily(d.name, [d], r, now);
}

describe('verify checks', () => {
  it('grades freshness and count', () => {
    assert.equal(oneChain(ds([snap('bak-1', 7200), snap('bak-2', 3600)]), rules, NOW).state, 'OK');
    const stale = oneChain(ds([snap('bak-1', 200000), snap('bak-2', 90000)]), rules, NOW);
    assert.equal(stale.state, 'CRITICAL');
    assert.match(stale.message, /25\.0 h old, limit 24\.0 h/);
    const few = oneChain(ds([snap('bak-2', 3600)]), rules, NOW);
    assert.equal(few.state, 'WARNING');
    assert.match(few.message, /1 snapshots, fewer than 2/);
    assert.equal(
      oneChain(ds([snap('manual', 10)]), rules, NOW).state,
      'CRITICAL',
      'other snapshots do not count',
    );
    assert.equal(
      oneChain(ds([snap('bak-1', 7200), snap('bak-2', 3600)], '1-abc'), rules, NOW).state,
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
    const planted = oneChain(ds([...old, snap('bak-20991225T000000Z', 60)]), rules, NOW);
    assert.equal(planted.state, 'CRITICAL');
    assert.match(
      planted.message,
      /1 snapshot\(s\) not to be trusted .*bak-20991225T000000Z named for 2099-12-25T00:00:00Z, in the future/,
    );
    assert.match(planted.message, /newest backup is 2\.0 d old/);
    assert.equal(planted.figures.newest, stamp(NOW - 2 * day));
    const backwards = oneChain(ds([...old, snap(stamp(NOW - 10 * day), 60)]), rules, NOW);
    assert.equal(backwards.state, 'CRITICAL');
    assert.match(backwards.message, /earlier than .*which this pool received before it/);
    const honest = oneChain(ds([...old, snap(stamp(NOW - 60), 60)]), rules, NOW);
    assert.equal(honest.state, 'OK');
  });

  it('measures the replication lag by guid', () => {
    const a = snap('bak-1', 200000);
    const b = snap('bak-2', 3600);
    assert.equal(checkReplication('p/d', [ds([a, b])], [ds([a, b])], 'r', rules, NOW).state, 'OK');
    const lag = checkReplication('p/d', [ds([a, b])], [ds([a, { ...b, guid: 'other' }])], 'r', rules, NOW);
    assert.equal(lag.state, 'CRITICAL');
    assert.match(lag.message, /bak-1/);
    assert.equal(checkReplication('p/d', [ds([a, b])], [], 'r', rules, NOW).state, 'CRITICAL');
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
    assert.equal(checkGuest(m, new Set(['main/b/vm-100-disk-0']), id, 'bak-').state, 'OK');
    assert.equal(checkGuest(m, new Set(), id, 'bak-').state, 'CRITICAL');
    const partial = checkGuest(
      { ...m, missing: [{ key: 'scsi1', reason: 'failed' }] },
      new Set(['main/b/vm-100-disk-0']),
      id,
      'bak-',
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
      ['m/vm-100-disk-0', [target('m/vm-100-disk-0', [snap('bak-1', 3600)])]],
      ['m/vm-100-disk-1', [target('m/vm-100-disk-1', [snap('bak-1', 200000)])]],
      ['m/vm-101-disk-0', [target('m/vm-101-disk-0', [snap('other', 60)])]],
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

describe("verify: a disk's family of chains", () => {
  const DAY = 86_400;
  const primary = 'main/b/vm-100-disk-0';
  const later = chainDataset(primary, 'bak-20261130T100000Z');
  /** A chain named name holding zbm snapshots of these ages (seconds), oldest first. */
  const chain = (name: string, ages: number[], fields: Parameters<typeof dataset>[2] = {}) =>
    dataset(
      name,
      ages.map((age, i) =>
        snapshot(name, `bak-${name.length}-${i}`, { creation: NOW - age, createtxg: txg++ }),
      ),
      fields,
    );
  const stalePrimary = chain(primary, [30 * DAY, 20 * DAY, 10 * DAY]);
  const freshLater = chain(later, [2 * 3600, 3600]);

  it('is OK when the older chain went stale but the later one is fresh, under the primary, counting both', () => {
    // The old chain alone: CRITICAL, as verify judged it before families.
    assert.equal(oneChain(stalePrimary, rules, NOW).state, 'CRITICAL');
    const [c, ...more] = diskChecks([freshLater, stalePrimary], rules, NOW);
    assert.equal(more.length, 0, 'one check per disk, not per chain');
    assert.ok(c);
    assert.equal(c.state, 'OK');
    assert.equal(c.subject, primary);
    assert.equal(c.message, `newest bak-${later.length}-1 60 min old in ${later}, 5 snapshots in 2 chains`);
    assert.deepEqual(c.figures, {
      snapshots: 5,
      newest: `bak-${later.length}-1`,
      age_seconds: 3600,
      chains: 2,
      newest_chain: later,
    });
  });

  it('sums the snapshots of all chains for --min-snapshots, each restore point (guid) once', () => {
    const min5 = { ...rules, minSnapshots: 5 };
    assert.equal(oneChain(freshLater, min5, NOW).state, 'WARNING');
    assert.equal(checkFamily(primary, [stalePrimary, freshLater], min5, NOW).state, 'OK');
    const min6 = checkFamily(primary, [stalePrimary, freshLater], { ...rules, minSnapshots: 6 }, NOW);
    assert.equal(min6.state, 'WARNING');
    assert.match(min6.message, /^5 snapshots, fewer than 6 \(/);
    // The same snapshot (guid) seen in two chains is one restore point.
    const [first] = stalePrimary.snapshots;
    assert.ok(first);
    const twice = { ...freshLater, snapshots: [{ ...first, dataset: later }, ...freshLater.snapshots] };
    assert.equal(checkFamily(primary, [stalePrimary, twice], rules, NOW).figures.snapshots, 5);
  });

  it("judges a template's disk by presence only: backed up once, never stale, one snapshot enough", () => {
    const old = snap('bak-20260101T000000Z', 300 * 86400);
    const template = { ...ds([old]), name: 'main/bak/base-9000-disk-0' };
    const c = checkFamily(template.name, [template], rules, NOW);
    assert.equal(c.state, 'OK');
    assert.equal(c.message, "a template's disk, backed up once: bak-20260101T000000Z");
    assert.equal(checkFamily(template.name, [{ ...template, snapshots: [] }], rules, NOW).state, 'CRITICAL');
    // The same snapshot under a guest's disk name is stale.
    const disk = { ...template, name: 'main/bak/vm-9000-disk-0' };
    assert.equal(checkFamily(disk.name, [disk], rules, NOW).state, 'CRITICAL');
  });

  it('is CRITICAL naming the family when every chain is stale, and judges the newest of them', () => {
    const staleLater = chain(later, [4 * DAY, 3 * DAY]);
    const [c] = diskChecks([stalePrimary, staleLater], rules, NOW);
    assert.ok(c);
    assert.equal(c.state, 'CRITICAL');
    assert.equal(c.subject, primary);
    assert.match(c.message, /^newest backup is 3\.0 d old, limit 24\.0 h: .* in 2 chains\)$/);
    const none = checkFamily(primary, [chain(primary, []), chain(later, [])], rules, NOW);
    assert.equal(none.state, 'CRITICAL');
    assert.equal(none.message, 'no bak-* snapshot at all in 2 chains');
    // A later chain whose primary is gone (pruned empty, or destroyed by hand) still counts under its name.
    const [orphan] = diskChecks([freshLater], rules, NOW);
    assert.deepEqual([orphan?.subject, orphan?.state, orphan?.figures.chains], [primary, 'OK', 1]);
    assert.match(orphan?.message ?? '', new RegExp(`old in ${later}, 2 snapshots$`));
  });

  it('names the chain of an anomaly or an interrupted transfer when there are several', () => {
    const planted = {
      ...freshLater,
      snapshots: [
        ...freshLater.snapshots,
        snapshot(later, 'bak-20991225T000000Z', { creation: NOW - 60, createtxg: txg++ }),
      ],
    };
    const c = checkFamily(primary, [stalePrimary, planted], rules, NOW);
    assert.equal(c.state, 'CRITICAL');
    assert.match(c.message, new RegExp(`not to be trusted .*: ${later}@bak-20991225T000000Z named for 2099`));
    assert.equal(c.figures.newest, `bak-${later.length}-1`, 'the planted snapshot is not the newest backup');
    const resuming = checkFamily(
      primary,
      [stalePrimary, { ...freshLater, resumeToken: '1-abc' }],
      rules,
      NOW,
    );
    assert.equal(resuming.state, 'WARNING');
    assert.match(resuming.message, new RegExp(`an interrupted transfer into ${later} is waiting to resume`));
  });

  it('keeps a dataset named like a chain of another prefix, or of a bad stamp, a disk of its own', () => {
    const other = chain(`${primary}.other-20261130T100000Z`, [3600]);
    const bad = chain(`${primary}.bak-20261130X100000Z`, [10 * DAY]);
    const checks = diskChecks([chain(primary, [7200, 3600]), other, bad], rules, NOW);
    assert.deepEqual(
      checks.map((c) => [c.subject, c.state, c.figures.chains]),
      [
        [primary, 'OK', 1],
        [other.name, 'WARNING', 1],
        [bad.name, 'CRITICAL', 1],
      ],
    );
    // With --prefix other-, the first one is the later chain instead.
    const asOther = diskChecks(
      [chain(primary, []), other],
      { ...rules, prefix: 'other-', minSnapshots: 1 },
      NOW,
    );
    assert.deepEqual(
      asOther.map((c) => [c.subject, c.figures.chains]),
      [[primary, 2]],
    );
  });

  it('measures the replication lag per family, by guid, on a tier that mirrors each chain', () => {
    const mirror = (d: Dataset, keep: number) => ({
      ...d,
      name: d.name.replace(/^main\/b/, 'r/b'),
      snapshots: d.snapshots.slice(0, keep),
    });
    const roots = { local: 'main/b', remote: 'r/b' };
    const both = replicationChecks(
      [stalePrimary, freshLater],
      [mirror(stalePrimary, 3), mirror(freshLater, 2)],
      roots,
      'rep',
      rules,
      NOW,
    );
    assert.deepEqual(
      both.map(({ disk, check }) => [
        disk,
        check.subject,
        check.state,
        check.figures.lag_seconds,
        check.figures.chains,
      ]),
      [[primary, `${primary} → rep`, 'OK', 3600, 2]],
    );
    // The later chain not replicated yet: the lag is the old chain's, and the message says which chain is missing.
    const [behind] = replicationChecks(
      [stalePrimary, freshLater],
      [mirror(stalePrimary, 3)],
      roots,
      'rep',
      rules,
      NOW,
    );
    assert.equal(behind?.check.state, 'CRITICAL');
    assert.equal(behind?.check.figures.lag_seconds, 10 * DAY);
    assert.match(behind?.check.message ?? '', new RegExp(`not on rep yet: ${later}$`));
    // Only the later chain there, the old one pruned away on the replica: still the family's lag.
    const [pruned] = replicationChecks(
      [stalePrimary, freshLater],
      [mirror(freshLater, 2)],
      roots,
      'rep',
      rules,
      NOW,
    );
    assert.deepEqual([pruned?.check.state, pruned?.check.figures.lag_seconds], ['OK', 3600]);
    const [absent] = replicationChecks([stalePrimary, freshLater], [], roots, 'rep', rules, NOW);
    assert.match(absent?.check.message ?? '', /not replicated to rep at all/);
  });

  it("finds a guest's disk in any chain of its family, from the manifest or from the node", () => {
    const m = {
      vmid: 100,
      name: 'web',
      snapshot: 'bak-20261201T100000Z',
      disks: [{ key: 'scsi0', target: later }],
      missing: [],
    };
    const id = (t: string) => t;
    const here = (names: string[]) => new Set(names.map((n) => familyOf(n, 'bak-')));
    assert.equal(checkGuest(m, here([primary, later]), id, 'bak-').state, 'OK');
    // The manifest names the primary, the disk now lives in a later chain (or the other way round).
    assert.equal(
      checkGuest({ ...m, disks: [{ key: 'scsi0', target: primary }] }, here([later]), id, 'bak-').state,
      'OK',
    );
    assert.equal(checkGuest(m, here([primary]), id, 'bak-').state, 'OK');
    const gone = checkGuest(m, here(['main/b/vm-101-disk-0']), id, 'bak-');
    assert.equal(gone.state, 'CRITICAL');
    assert.match(gone.message, new RegExp(`gone here: scsi0 ${later}`));
    // On a replica the manifest's target (named on the backup server) is relocated under its root.
    const relocated = checkGuest(m, here(['r/b/vm-100-disk-0']), (t) => targetDataset('r/b', t), 'bak-');
    assert.equal(relocated.state, 'OK');

    const pve = checkPveGuest(
      { vmid: 100, name: 'web', disks: [{ key: 'scsi0', target: primary }], unprotected: [] },
      families([stalePrimary, freshLater], 'bak-'),
      'dest',
      rules,
      NOW,
    );
    assert.equal(pve.state, 'OK');
    assert.match(
      pve.message,
      new RegExp(
        `^1 of 1 disk\\(s\\) backed up on dest, newest bak-${later.length}-1, oldest disk backup 60 min old$`,
      ),
    );
  });

  it('counts disks, not chains, in the performance data', () => {
    const checks = diskChecks(
      [stalePrimary, freshLater, chain('main/b/vm-101-disk-0', [7200, 3600])],
      rules,
      NOW,
    );
    assert.equal(
      perfData(checks, rules, 86400),
      'datasets=2;;;0 backup_age=3600s;;86400;0 snapshots=2;2:;;0',
    );
  });
});

describe('verify performance data (after "|" of the status line)', () => {
  it('gives the stalest backup age, the fewest snapshots, the largest lag and the oldest scrub, with thresholds', () => {
    const a = snap('bak-1', 7200);
    const b = snap('bak-2', 3600);
    const checks = [
      oneChain(ds([a, b]), rules, NOW),
      oneChain(dataset('p/e', [snapshot('p/e', 'bak-3', { creation: NOW - 5000 })]), rules, NOW),
      checkReplication('p/d', [ds([a, b])], [ds([a])], 'r', rules, NOW),
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
      perfData([oneChain(ds([a, b]), rules, NOW), pool(never, { at: NOW - 600 })], rules, 35 * 86400),
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
        [dataset('b/vm-1-disk-0', [snapshot('b/vm-1-disk-0', 'bak-1', { creation: NOW - 60 })])],
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
