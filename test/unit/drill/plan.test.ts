import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLogger } from '../../../src/cli/log.ts';
import { reportChecks } from '../../../src/commands/monitoring.ts';
import {
  checkDrillAge,
  type DrillRequest,
  drillPerfData,
  type GuestDrill,
  judgeDrill,
  planDrills,
  sampleGuests,
  updateRecords,
} from '../../../src/drill/plan.ts';
import {
  type DrillRecord,
  drillStatePath,
  parseDrillRecords,
  readDrillRecords,
  writeDrillRecords,
} from '../../../src/drill/state.ts';
import type { Manifest } from '../../../src/metadata/manifest.ts';
import { Metrics } from '../../../src/metrics/prometheus.ts';
import { restorePoints } from '../../../src/restore/points.ts';
import type { Dataset } from '../../../src/zfs/types.ts';
import { captureStdout, manifestDisk } from '../../support/drill.ts';
import { dataset, snapshot } from '../../support/zfs.ts';

const ROOT = 'main/bak-zbm';
const S1 = 'bak-zbm-20261126T100000Z';
const S2 = 'bak-zbm-20261126T110000Z';
const NOW = 1_800_000_000;

function ds(name: string, snaps: [string, string][], extra: Partial<Dataset> = {}): Dataset {
  return dataset(
    `${ROOT}/${name}`,
    snaps.map(([s, guid], i) =>
      snapshot(`${ROOT}/${name}`, s, { guid, createtxg: i + 10, referenced: 2048 }),
    ),
    extra,
  );
}

const disk = (key: string, volname: string, guid: string) => manifestDisk(ROOT, key, volname, guid);

function manifest(
  vmid: number,
  snap: string,
  disks: Manifest['disks'],
  extra: Partial<Manifest> = {},
): Manifest {
  return {
    format: 1,
    zbm: '0.1.0',
    vmid,
    type: 'qemu',
    name: `g${vmid}`,
    node: 'pve1',
    snapshot: snap,
    time: snap === S1 ? '2026-11-26T10:00:00.000Z' : '2026-11-26T11:00:00.000Z',
    frozen: false,
    disks,
    missing: [],
    ...extra,
  };
}

/** Guest 100 with two disks at two points; guest 101 with one disk whose newest snapshot is another chain's. */
const MANIFESTS = [
  manifest(100, S1, [disk('scsi0', 'vm-100-disk-0', '11'), disk('efidisk0', 'vm-100-disk-1', '21')]),
  manifest(100, S2, [disk('scsi0', 'vm-100-disk-0', '12'), disk('efidisk0', 'vm-100-disk-1', '22')]),
  manifest(101, S2, [disk('scsi0', 'vm-101-disk-0', '31')]),
];
const LISTING = [
  dataset(ROOT, []),
  ds('vm-100-disk-0', [
    [S1, '11'],
    [S2, '12'],
  ]),
  ds('vm-100-disk-1', [
    [S1, '21'],
    [S2, '22'],
  ]),
  ds('vm-101-disk-0', [[S2, '99']]),
];

const CONFIG_100 = [
  'name: g100',
  'scsi0: local-zfs:vm-100-disk-0,size=8G',
  'efidisk0: local-zfs:vm-100-disk-1,efitype=4m,size=1M',
  'ide2: none,media=cdrom',
  'sata1: local:100/vm-100-disk-9.qcow2,backup=0',
  '',
].join('\n');

function request(over: Partial<DrillRequest> = {}, listing = LISTING): DrillRequest {
  return {
    points: restorePoints(MANIFESTS, listing, ROOT),
    datasets: listing,
    host: 'zbm-dest',
    root: ROOT,
    selection: {},
    fullRead: false,
    records: new Map(),
    ...over,
  };
}

function only(drills: GuestDrill[], vmid: number): GuestDrill {
  const g = drills.find((d) => d.vmid === vmid);
  assert.ok(g, `no drill of guest ${vmid}`);
  return g;
}

function record(lastSuccess: number | null, lastAttempt: number): DrillRecord {
  return { lastSuccess, lastAttempt, state: lastSuccess === lastAttempt ? 'OK' : 'CRITICAL', snapshot: S2 };
}

describe('restore drills: the plan', () => {
  it('drills the newest point of every guest; a good guest passes, saying what it proved and that no block was read', () => {
    const drills = planDrills(request());
    assert.deepEqual(
      drills.map((d) => [d.vmid, d.point?.snapshot]),
      [
        [100, S2],
        [101, S2],
      ],
    );
    const g = only(drills, 100);
    assert.deepEqual(
      g.disks.map((d) => [d.key, d.snapshot, d.problem]),
      [
        ['scsi0', `${ROOT}/vm-100-disk-0@${S2}`, null],
        ['efidisk0', `${ROOT}/vm-100-disk-1@${S2}`, null],
      ],
    );
    assert.deepEqual(g.reads, []);
    const c = judgeDrill(g, { text: CONFIG_100 }, null);
    assert.equal(c.state, 'OK');
    assert.equal(c.subject, 'guest 100 (g100)');
    assert.equal(
      c.message,
      `${S2}: 2 disk(s) present with their recorded guids, the saved config names them, blocks not read (no --full-read)`,
    );
  });

  it('--file-systems: recognised and listed passes, saying so; unrecognised fails by disk and partition; XFS is said, not failed; --expect must be found', () => {
    const g = only(planDrills(request()), 100);
    const fs = (
      where: string,
      fstype: string | null,
      problem: { kind: 'unrecognised' | 'unreadable' | 'failed'; message: string } | null = null,
    ) => ({ where, fstype, rootEntries: problem ? null : 3, problem });
    const good = {
      expect: '/etc/hostname',
      disks: [
        {
          key: 'scsi0',
          fileSystems: [fs('scsi0 partition 1', 'vfat'), fs('scsi0 partition 2', 'ext4')],
          expectFound: true,
        },
        {
          key: 'efidisk0',
          fileSystems: [fs('efidisk0', 'xfs', { kind: 'unreadable' as const, message: 'xfs: no reader' })],
          expectFound: false,
        },
      ],
    };
    const ok = judgeDrill(g, { text: CONFIG_100 }, null, good);
    assert.equal(ok.state, 'OK');
    assert.equal(
      ok.message,
      `${S2}: 2 disk(s) present with their recorded guids, the saved config names them, blocks not read (no --full-read), 2 file system(s) recognised and listed (efidisk0 (xfs) not listed), /etc/hostname found`,
    );
    assert.equal(ok.figures.file_systems, 2);
    const bad = judgeDrill(g, { text: CONFIG_100 }, null, {
      expect: '/etc/hostname',
      disks: [
        {
          key: 'scsi0',
          fileSystems: [
            fs('scsi0 partition 1', 'vfat'),
            fs('scsi0 partition 2', null, {
              kind: 'unrecognised',
              message: 'no file system that zbm can recognise',
            }),
          ],
          expectFound: false,
        },
      ],
    });
    assert.equal(bad.state, 'CRITICAL');
    assert.equal(
      bad.message,
      `${S2}: scsi0 partition 2: no file system that zbm can recognise; /etc/hostname is on none of its file systems`,
    );
  });

  it('--full-read reads every present disk; a clean read passes, a disk that does not read back fails naming it', () => {
    const g = only(planDrills(request({ fullRead: true })), 100);
    assert.deepEqual(
      g.reads.map((d) => d.snapshot),
      [`${ROOT}/vm-100-disk-0@${S2}`, `${ROOT}/vm-100-disk-1@${S2}`],
    );
    const ok = judgeDrill(g, { text: CONFIG_100 }, [
      { key: 'scsi0', error: null },
      { key: 'efidisk0', error: null },
    ]);
    assert.equal(ok.state, 'OK');
    assert.match(ok.message, /every block read back without a checksum error \(4\.0 KiB\)$/);
    assert.equal(ok.figures.bytes_read, 4096);
    const bad = judgeDrill(g, { text: CONFIG_100 }, [
      { key: 'scsi0', error: 'zfs send failed on zbm-dest: cannot send: I/O error' },
      { key: 'efidisk0', error: null },
    ]);
    assert.equal(bad.state, 'CRITICAL');
    assert.equal(
      bad.message,
      `${S2}: scsi0: ${ROOT}/vm-100-disk-0@${S2} does not read back: zfs send failed on zbm-dest: cannot send: I/O error`,
    );
  });

  it('a disk missing from the restore point fails, naming the guest, the disk and its snapshot, and it is not read', () => {
    const listing = LISTING.map((d) =>
      d.name === `${ROOT}/vm-100-disk-1` ? ds('vm-100-disk-1', [[S1, '21']]) : d,
    );
    const g = only(planDrills(request({ fullRead: true }, listing)), 100);
    assert.equal(g.point?.snapshot, S2, 'the newest point is drilled, complete or not');
    assert.deepEqual(
      g.reads.map((d) => d.key),
      ['scsi0'],
    );
    const c = judgeDrill(g, { text: CONFIG_100 }, [{ key: 'scsi0', error: null }]);
    assert.equal(c.state, 'CRITICAL');
    assert.equal(c.subject, 'guest 100 (g100)');
    assert.equal(c.message, `${S2}: efidisk0: ${ROOT}/vm-100-disk-1@${S2} does not exist on zbm-dest`);

    const gone = listing.filter((d) => d.name !== `${ROOT}/vm-100-disk-1`);
    const c2 = judgeDrill(only(planDrills(request({}, gone)), 100), { text: CONFIG_100 }, null);
    assert.equal(c2.message, `${S2}: efidisk0: ${ROOT}/vm-100-disk-1 does not exist on zbm-dest`);
  });

  it('a snapshot of the same name with another guid fails: it is another backup', () => {
    const c = judgeDrill(
      only(planDrills(request()), 101),
      { text: 'scsi0: local-zfs:vm-101-disk-0,size=8G\n' },
      null,
    );
    assert.equal(c.state, 'CRITICAL');
    assert.equal(c.subject, 'guest 101 (g101)');
    assert.equal(
      c.message,
      `${S2}: scsi0: ${ROOT}/vm-101-disk-0@${S2} has guid 99, the manifest recorded 31: it is another backup of the same name`,
    );
  });

  it('a saved config that does not parse fails, and so does one that cannot be read', () => {
    const g = only(planDrills(request()), 100);
    const c = judgeDrill(g, { text: `${CONFIG_100}this is not a config line\n` }, null);
    assert.equal(c.state, 'CRITICAL');
    assert.equal(c.subject, 'guest 100 (g100)');
    assert.match(
      c.message,
      new RegExp(`^${S2}: the saved config does not parse: config line 6: expected "key: value"`),
    );
    const unread = judgeDrill(g, { error: 'zbm: /root/m/100/x.conf is not a regular file' }, null);
    assert.equal(unread.state, 'CRITICAL');
    assert.match(
      unread.message,
      /cannot read the saved config: zbm: \/root\/m\/100\/x\.conf is not a regular file/,
    );
  });

  it('a config that names other disks than the backup fails: one lacking, one with another volume, one not accounted for', () => {
    const g = only(planDrills(request()), 100);
    const lacking = judgeDrill(g, { text: 'scsi0: local-zfs:vm-100-disk-0,size=8G\n' }, null);
    assert.equal(
      lacking.message,
      `${S2}: the saved config has no efidisk0 (the manifest has local-zfs:vm-100-disk-1)`,
    );
    const other = judgeDrill(
      g,
      { text: CONFIG_100.replace('efidisk0: local-zfs:vm-100-disk-1', 'efidisk0: local-zfs:vm-100-disk-7') },
      null,
    );
    assert.equal(
      other.message,
      `${S2}: efidisk0 is local-zfs:vm-100-disk-7 in the saved config, local-zfs:vm-100-disk-1 in the manifest`,
    );
    const extra = judgeDrill(g, { text: `${CONFIG_100}scsi2: local-lvm:vm-100-disk-3,size=4G\n` }, null);
    assert.equal(
      extra.message,
      `${S2}: the saved config names scsi2 (local-lvm:vm-100-disk-3,size=4G), which the backup neither holds nor lists as missing`,
    );
    // The same disk listed as missing in the manifest is accounted for.
    const points = restorePoints(
      [manifest(100, S2, MANIFESTS[1]?.disks ?? [], { missing: [{ key: 'scsi2', reason: 'not zfspool' }] })],
      LISTING,
      ROOT,
    );
    const listed = only(planDrills(request({ points })), 100);
    assert.equal(
      judgeDrill(listed, { text: `${CONFIG_100}scsi2: local-lvm:vm-100-disk-3\n` }, null).state,
      'OK',
    );
  });

  it('--vmid drills those guests; one without backups fails by name; --snapshot chooses the point as restore does', () => {
    const drills = planDrills(request({ vmids: [100, 250], selection: { snapshot: S1 } }));
    assert.deepEqual(
      drills.map((d) => [d.vmid, d.point?.snapshot ?? d.error]),
      [
        [100, S1],
        [250, `no backup of guest 250 on zbm-dest:${ROOT}`],
      ],
    );
    const missing = judgeDrill(only(drills, 250), null, null);
    assert.equal(missing.state, 'CRITICAL');
    assert.equal(missing.subject, 'guest 250');
    const at = planDrills(request({ vmids: [100], selection: { time: new Date('2026-11-26T10:30:00Z') } }));
    assert.equal(at[0]?.point?.snapshot, S1);
    const none = planDrills(request({ vmids: [101], selection: { snapshot: S1 } }));
    assert.match(
      none[0]?.error ?? '',
      /guest 101 has no backup bak-zbm-20261126T100000Z on zbm-dest:main\/bak-zbm/,
    );
  });
});

describe('restore drills: --sample rotation', () => {
  it('picks the guests whose last successful drill is oldest, never drilled first, and goes round all of them', () => {
    const vmids = [100, 101, 102, 103, 104];
    let records = new Map<number, DrillRecord>([
      [100, record(NOW - 86400, NOW - 86400)],
      [101, record(NOW - 7 * 86400, NOW - 7 * 86400)],
      // Failed yesterday, last passed long ago: it counts by its last success.
      [103, record(NOW - 30 * 86400, NOW - 86400)],
    ]);
    assert.deepEqual(sampleGuests(vmids, records, 2), [102, 104]);
    const seen: number[] = [];
    for (let run = 0; run < 3; run++) {
      const picked = sampleGuests(vmids, records, 2);
      seen.push(...picked);
      records = updateRecords(
        records,
        picked.map((vmid) => ({ vmid, snapshot: S2, state: 'OK' as const })),
        NOW + run * 3600,
      );
    }
    assert.deepEqual(seen, [102, 104, 101, 103, 100, 102]);
  });

  it('ties go to the older attempt, then the lower VMID; planDrills samples among --vmid', () => {
    const records = new Map<number, DrillRecord>([
      [100, record(null, NOW - 60)],
      [101, record(null, NOW - 600)],
    ]);
    assert.deepEqual(sampleGuests([100, 101, 102], records, 2), [101, 102]);
    assert.deepEqual(sampleGuests([100, 101], new Map(), 1), [100]);
    const drills = planDrills(request({ vmids: [100, 101], sample: 1, records }));
    assert.deepEqual(
      drills.map((d) => d.vmid),
      [101],
    );
  });

  it('records each attempt, and a success only when the drill passed', () => {
    const before = new Map<number, DrillRecord>([[100, record(NOW - 86400, NOW - 86400)]]);
    const after = updateRecords(
      before,
      [
        { vmid: 100, snapshot: S2, state: 'CRITICAL' },
        { vmid: 101, snapshot: S2, state: 'OK' },
      ],
      NOW,
    );
    assert.deepEqual(after.get(100), {
      lastSuccess: NOW - 86400,
      lastAttempt: NOW,
      state: 'CRITICAL',
      snapshot: S2,
    });
    assert.deepEqual(after.get(101), { lastSuccess: NOW, lastAttempt: NOW, state: 'OK', snapshot: S2 });
    assert.equal(before.get(100)?.lastAttempt, NOW - 86400, 'the previous records are not changed');
  });
});

describe('restore drills: records on this host', () => {
  it('are written per root and read back; a file zbm did not write is refused by name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zbm-drill-'));
    try {
      assert.deepEqual(await readDrillRecords(dir, ROOT), new Map(), 'no drill yet: no record');
      const records = new Map<number, DrillRecord>([[100, record(NOW, NOW)]]);
      await writeDrillRecords(dir, ROOT, records);
      const path = drillStatePath(dir, ROOT);
      assert.equal(path, `${dir}/drill/main%2Fbak-zbm.json`);
      assert.deepEqual(await readDrillRecords(dir, ROOT), records);
      assert.deepEqual(await readDrillRecords(dir, 'main/other'), new Map(), 'another root has its own file');
      assert.equal(JSON.parse(readFileSync(path, 'utf8')).root, ROOT);
      writeFileSync(path, '{"guests": {"100": {"lastSuccess": "yesterday"}}}');
      await assert.rejects(
        readDrillRecords(dir, ROOT),
        /main%2Fbak-zbm\.json: the record of guest "100" is not one zbm writes/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.throws(() => parseDrillRecords('[', 'f'), /f: not valid JSON/);
    assert.throws(() => parseDrillRecords('{"guests": []}', 'f'), /f: expected \{"guests"/);
  });
});

describe('restore drills: verify --max-drill-age-days', () => {
  const guest = { vmid: 100, name: 'web' };
  const limit = 7 * 86400;
  it('warns about a guest never drilled, and one whose last success is older than the limit', () => {
    const never = checkDrillAge(guest, undefined, limit, NOW);
    assert.deepEqual(
      [never.state, never.subject, never.message],
      ['WARNING', 'drill of guest 100 (web)', 'never passed a restore drill on this host: run zbm drill'],
    );
    const failed = checkDrillAge(guest, record(null, NOW - 60), limit, NOW);
    assert.equal(failed.state, 'WARNING');
    assert.match(
      failed.message,
      /^never passed a restore drill on this host \(last drill CRITICAL, bak-zbm-/,
    );
    const old = checkDrillAge(guest, record(NOW - 8 * 86400, NOW - 60), limit, NOW);
    assert.equal(old.state, 'WARNING');
    assert.match(
      old.message,
      /^last successful restore drill 8\.0 d ago, longer than --max-drill-age-days \(7\.0 d\)/,
    );
    const fresh = checkDrillAge(guest, record(NOW - 86400, NOW - 86400), limit, NOW);
    assert.deepEqual([fresh.state, fresh.message], ['OK', 'last successful restore drill 1.0 d ago']);
    assert.equal(fresh.figures.drill_age_seconds, 86400);
  });
});

describe('restore drills: the report', () => {
  it('prints the status line with performance data, then one line per guest, and exits with the worst state', async () => {
    const drills = planDrills(request({ fullRead: true }));
    const checks = [
      judgeDrill(only(drills, 100), { text: CONFIG_100 }, [
        { key: 'scsi0', error: null },
        { key: 'efidisk0', error: null },
      ]),
      judgeDrill(only(drills, 101), { text: 'scsi0: local-zfs:vm-101-disk-0\n' }, []),
    ];
    const log = createLogger({ write: () => {} });
    const metrics = new Metrics();
    const { result: code, stdout } = await captureStdout(() =>
      reportChecks(
        'restore drill of 2 guest(s) on zbm-dest:main/bak-zbm',
        checks,
        drillPerfData(checks),
        false,
        log,
        metrics,
      ),
    );
    assert.equal(code, 2);
    assert.deepEqual(stdout.split('\n'), [
      'ZBM CRITICAL - restore drill of 2 guest(s) on zbm-dest:main/bak-zbm: 1 critical, 0 warning, 0 unknown, 1 ok | guests=2;;;0 failed=1;;0;0 bytes_read=4096B;;;0',
      `OK guest 100 (g100): ${S2}: 2 disk(s) present with their recorded guids, the saved config names them, every block read back without a checksum error (4.0 KiB)`,
      `CRITICAL guest 101 (g101): ${S2}: scsi0: ${ROOT}/vm-101-disk-0@${S2} has guid 99, the manifest recorded 31: it is another backup of the same name`,
      '',
    ]);
    // The failed guest counts as an error for alerts (its line is on stdout only).
    assert.deepEqual(
      log.messages.map((m) => m.level),
      ['error'],
    );
    assert.match(log.messages[0]?.text ?? '', /^CRITICAL guest 101 \(g101\): /);
    assert.deepEqual(
      metrics.samples.map((s) => [s.labels.subject, s.value]),
      [
        ['guest 100 (g100)', 0],
        ['guest 101 (g101)', 2],
      ],
    );
  });

  it('--json carries the same checks, and no guest at all is no performance data', async () => {
    const checks = [judgeDrill(only(planDrills(request()), 100), { text: CONFIG_100 }, null)];
    const { result, stdout } = await captureStdout(() =>
      reportChecks('drill', checks, drillPerfData(checks), true, createLogger({ write: () => {} })),
    );
    assert.equal(result, 0);
    const json = JSON.parse(stdout) as {
      state: string;
      perfdata: string;
      checks: { figures: object }[];
    };
    assert.equal(json.state, 'OK');
    assert.equal(json.perfdata, 'guests=1;;;0 failed=0;;0;0');
    assert.deepEqual(json.checks[0]?.figures, {
      snapshot: S2,
      disks: 2,
      failed: 0,
      full_read: 0,
      bytes_read: null,
    });
    assert.equal(drillPerfData([]), '');
  });
});
