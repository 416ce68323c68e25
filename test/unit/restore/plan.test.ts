import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Manifest } from '../../../src/metadata/manifest.ts';
import { parseManifestDump } from '../../../src/metadata/manifest.ts';
import type { ZfsPool } from '../../../src/pve/storage.ts';
import {
  type DiskOnlyPlan,
  describePlan,
  type GuestPlan,
  type LocalState,
  planDiskRestore,
  planGuestRestore,
  type RestoreRequest,
} from '../../../src/restore/plan.ts';
import { choosePoint, type RestorePoint, restorePoints } from '../../../src/restore/points.ts';
import { originsOf } from '../../../src/restore/tier.ts';
import type { Dataset, Snapshot } from '../../../src/zfs/types.ts';
import { dataset, snapshot } from '../../support/zfs.ts';

function snap(name: string, short: string, guid: string, txg: number): Snapshot {
  return snapshot(name, short, { guid, createtxg: txg, creation: txg, referenced: 1024 * 1024 });
}

function ds(name: string, snaps: [string, string][] = [], extra: Partial<Dataset> = {}): Dataset {
  return dataset(
    name,
    snaps.map(([s, g], i) => snap(name, s, g, i + 10)),
    extra,
  );
}

const S1 = 'bak-zbm-20261126T100000Z';
const S2 = 'bak-zbm-20261126T110000Z';

function manifest(snapshot: string, guids: [string, string], vmid = 100): Manifest {
  return {
    format: 1,
    zbm: '0.1.0',
    vmid,
    type: 'qemu',
    name: 'web',
    node: 'pve1',
    snapshot,
    time: snapshot === S1 ? '2026-11-26T10:00:00.000Z' : '2026-11-26T11:00:00.000Z',
    frozen: true,
    disks: [
      {
        key: 'scsi0',
        volume: 'local-zfs:vm-100-disk-0',
        source: 'rpool/data/vm-100-disk-0',
        target: 'main/bak-zbm/vm-100-disk-0',
        guid: guids[0],
        referenced: 1,
        bytesSent: 1,
        mode: 'full',
      },
      {
        key: 'efidisk0',
        volume: 'local-zfs:vm-100-disk-2',
        source: 'rpool/data/vm-100-disk-2',
        target: 'main/bak-zbm/vm-100-disk-2',
        guid: guids[1],
        referenced: 1,
        bytesSent: 1,
        mode: 'full',
      },
    ],
    missing: [],
  };
}

/** The replica: same names under another root; disk-2 lost its newest snapshot there. */
const TIER = [
  ds('tank/bak', []),
  ds('tank/bak/vm-100-disk-0', [
    [S1, '11'],
    [S2, '12'],
  ]),
  ds('tank/bak/vm-100-disk-2', [[S1, '21']]),
];
const MANIFESTS = [manifest(S2, ['12', '22']), manifest(S1, ['11', '21'])];

const CONFIG = `agent: 1
efidisk0: local-zfs:vm-100-disk-2,efitype=4m,size=1M
name: web
net0: virtio=BC:24:11:5A:10:00,bridge=vmbr0
parent: snap1
scsi0: local-zfs:vm-100-disk-0,iothread=1,size=64M
scsi1: local-zfs:vm-100-disk-1,backup=0,size=64M

[snap1]
scsi0: local-zfs:vm-100-disk-0,size=64M
`;

const pools = new Map<string, ZfsPool>([
  ['local-zfs', { pool: 'rpool/data', disabled: false, nodes: null }],
  ['other', { pool: 'tank2/vms', disabled: false, nodes: ['pve2'] }],
]);

function local(datasets: Dataset[] = [], existing: LocalState['existing'] = null): LocalState {
  return { node: 'pve1', pools, datasets: new Map(datasets.map((d) => [d.name, d])), existing };
}

function request(point: RestorePoint, extra: Partial<RestoreRequest> = {}): RestoreRequest {
  return {
    point,
    configText: CONFIG,
    tier: 'zbm-replica:tank/bak',
    force: false,
    newUuid: () => 'uuid',
    now: new Date('2026-11-26T12:00:00Z'),
    ...extra,
  };
}

const points = restorePoints(MANIFESTS, TIER, 'tank/bak');
const p1 = points.find((p) => p.snapshot === S1) as RestorePoint;
const p2 = points.find((p) => p.snapshot === S2) as RestorePoint;

function guestPlan(r: ReturnType<typeof planGuestRestore>): GuestPlan {
  if ('refused' in r) throw new Error(`refused: ${r.refused.join('; ')}`);
  return r.plan;
}

describe('restore points', () => {
  it('maps manifests to the datasets of this tier, by guid, oldest first', () => {
    assert.deepEqual(
      points.map((p) => [p.snapshot, p.complete]),
      [
        [S1, true],
        [S2, false],
      ],
    );
    assert.equal(p1.disks[0]?.dataset, 'tank/bak/vm-100-disk-0');
    assert.deepEqual(
      p2.disks.map((d) => d.present),
      [true, false],
    );
    // The same snapshot name with another guid is another backup: not this one.
    const other = restorePoints([manifest(S1, ['99', '21'])], TIER, 'tank/bak');
    assert.equal(other[0]?.disks[0]?.present, false);
    // A manifest without a guid could name any snapshot of that name: it names none.
    const guidless = restorePoints([manifest(S1, ['', '21'])], TIER, 'tank/bak');
    assert.equal(guidless[0]?.disks[0]?.present, false);
    assert.equal(guidless[0]?.complete, false);
    assert.equal(p1.disks[1]?.newest, true);
    assert.equal(p1.disks[0]?.newest, false);
  });

  it('chooses the newest complete point, one by name, or the newest at or before a time', () => {
    const all = (p: RestorePoint) => p.complete;
    const latest = choosePoint(points, {}, all, 'x');
    assert.ok('point' in latest);
    assert.equal(latest.point.snapshot, S1);
    assert.deepEqual(
      latest.skipped.map((p) => p.snapshot),
      [S2],
    );
    const byName = choosePoint(points, { snapshot: S2 }, all, 'x');
    assert.ok('error' in byName && /incomplete/.test(byName.error) && /efidisk0/.test(byName.error));
    const disk = choosePoint(
      points,
      { snapshot: S2 },
      (p) => p.disks.some((d) => d.key === 'scsi0' && d.present),
      'x',
    );
    assert.ok('point' in disk);
    const early = choosePoint(points, { time: new Date('2026-11-26T09:59:59Z') }, all, 'zbm-dest:r');
    assert.ok('error' in early);
    assert.match(early.error, /no complete backup at or before 2026-11-26T09:59:59.000Z on zbm-dest:r/);
    const at = choosePoint(points, { time: new Date('2026-11-26T10:30:00Z') }, () => true, 'x');
    assert.ok('point' in at && at.point.snapshot === S1);
  });

  it('reads a dump of manifests and reports the bad files without losing the good ones', () => {
    const good = JSON.stringify(manifest(S1, ['11', '21']));
    const NUL = '\u0000';
    const dump = `100/${S1}.json\n${good}${NUL}100/bad.json\n{${NUL}101/${S1}.json\n${good}${NUL}`;
    const r = parseManifestDump(dump);
    assert.equal(r.manifests.length, 1);
    assert.equal(r.errors.length, 2);
    assert.match(r.errors[1] ?? '', /names guest 100/);
    const hostile = JSON.stringify({
      ...manifest(S1, ['1', '2']),
      disks: [{ key: 'scsi0', target: 'a/b; rm -rf /' }],
    });
    assert.match(parseManifestDump(`100/${S1}.json\n${hostile}${NUL}`).errors[0] ?? '', /target/);
  });
});

describe('restore plan: whole guest', () => {
  it('as a new VMID: renamed disks under temporary names, consistent config, chain snapshot dropped', () => {
    const plan = guestPlan(planGuestRestore(request(p1, { asVmid: 200 }), local()));
    assert.deepEqual(
      plan.disks.map((d) => [d.key, d.source, d.target, d.temp, d.volume, d.aside]),
      [
        [
          'scsi0',
          'tank/bak/vm-100-disk-0',
          'rpool/data/vm-200-disk-0',
          'rpool/data/zbm-restore-vm-200-disk-0',
          'local-zfs:vm-200-disk-0',
          null,
        ],
        [
          'efidisk0',
          'tank/bak/vm-100-disk-2',
          'rpool/data/vm-200-disk-2',
          'rpool/data/zbm-restore-vm-200-disk-2',
          'local-zfs:vm-200-disk-2',
          null,
        ],
      ],
    );
    assert.equal(plan.configPath, 'nodes/pve1/qemu-server/200.conf');
    assert.match(plan.configText, /^scsi0: local-zfs:vm-200-disk-0,iothread=1,size=64M$/m);
    assert.doesNotMatch(plan.configText, /vm-100-|parent:|\[snap1\]/);
    assert.equal(plan.keepSnapshot, false);
    assert.match(plan.warnings.join('\n'), /scsi1 left out/);
    assert.match(describePlan(plan), /as new guest 200/);
  });

  it('shows the hookscript of the backed-up config and leaves it out, unless asked for', () => {
    const configText = `${CONFIG.replace(/^name: .*$/m, 'hookscript: local:snippets/owned.sh\n$&')}`;
    const plan = guestPlan(planGuestRestore(request(p1, { asVmid: 200, configText }), local()));
    assert.doesNotMatch(plan.configText, /hookscript/);
    assert.match(
      plan.warnings.join('\n'),
      /hookscript left out of the restored config: "hookscript: local:snippets\/owned.sh" runs code/,
    );
    const kept = guestPlan(
      planGuestRestore(request(p1, { asVmid: 200, configText, keepHostKeys: true }), local()),
    );
    assert.match(kept.configText, /^hookscript: local:snippets\/owned.sh$/m);
  });

  it('refuses an existing guest (and says how out), a guest on another node even when forced, a running one', () => {
    const ex = { node: 'pve1', type: 'qemu' as const, configText: 'name: web\n', running: false };
    const r = planGuestRestore(request(p1), local([], ex));
    assert.ok('refused' in r);
    assert.match(r.refused.join('\n'), /guest 100 exists.*--as-vmid.*--force/);
    const far = planGuestRestore(
      request(p1, { asVmid: 200, force: true }),
      local([], { node: 'pve2', type: 'qemu', running: false }),
    );
    assert.ok('refused' in far && /own node/.test(far.refused.join('\n')));
    const running = planGuestRestore(request(p1, { force: true }), local([], { ...ex, running: true }));
    assert.ok('refused' in running && /running: stop it first/.test(running.refused.join('\n')));
  });

  it('refuses an existing target dataset unless forced; forced, it is moved aside', () => {
    const here = [ds('rpool/data/vm-100-disk-0', [['x', '5']])];
    const r = planGuestRestore(request(p1), local(here));
    assert.ok('refused' in r && /rpool\/data\/vm-100-disk-0 exists/.test(r.refused.join('\n')));
    const forced = guestPlan(planGuestRestore(request(p1, { force: true }), local(here)));
    assert.equal(forced.disks[0]?.aside, 'rpool/data/zbm-replaced-20261126T120000Z-vm-100-disk-0');
    assert.equal(forced.disks[1]?.aside, null);
  });

  it('in place: keeps the received snapshot, and warns that an older one starts a new chain beside the old backups', () => {
    const older = guestPlan(planGuestRestore(request(p1), local()));
    assert.equal(older.keepSnapshot, true);
    assert.match(
      older.warnings.join('\n'),
      /next backup of guest 100 starts a new chain beside its old backups, as a clone of/,
    );
    const tier = [ds('tank/bak/vm-100-disk-0', [[S1, '11']]), ds('tank/bak/vm-100-disk-2', [[S1, '21']])];
    const [newest] = restorePoints([manifest(S1, ['11', '21'])], tier, 'tank/bak');
    const plan = guestPlan(planGuestRestore(request(newest as RestorePoint), local()));
    assert.equal(plan.keepSnapshot, true);
    assert.equal(plan.warnings.filter((w) => /chain/.test(w)).length, 0);
  });

  it('resumes into the temporary datasets: partial ones resume, complete ones are skipped, foreign ones are refused', () => {
    const temps = [
      ds('rpool/data/zbm-restore-vm-200-disk-0', [], { resumeToken: '1-abc' }),
      ds('rpool/data/zbm-restore-vm-200-disk-2', [[S1, '21']]),
    ];
    const plan = guestPlan(planGuestRestore(request(p1, { asVmid: 200 }), local(temps)));
    assert.deepEqual(
      plan.disks.map((d) => d.tempState),
      ['partial', 'complete'],
    );
    const foreign = [ds('rpool/data/zbm-restore-vm-200-disk-2', [[S2, '22']])];
    const r = planGuestRestore(request(p1, { asVmid: 200 }), local(foreign));
    assert.ok(
      'refused' in r && /zfs destroy -r rpool\/data\/zbm-restore-vm-200-disk-2/.test(r.refused.join('\n')),
    );
  });

  it('checks the storage: a zfspool of this node, or the one given', () => {
    const r = planGuestRestore(request(p1, { asVmid: 200, targetStorage: 'other' }), local());
    assert.ok('refused' in r && /not enabled on node pve1/.test(r.refused.join('\n')));
    const none = planGuestRestore(request(p1, { asVmid: 200, targetStorage: 'nope' }), local());
    assert.ok('refused' in none && /--target-storage/.test(none.refused.join('\n')));
  });

  it('refuses encrypted backups with the way to do it by hand', () => {
    const tier = TIER.map((d) => ({ ...d, encrypted: true }));
    const [p] = restorePoints([manifest(S1, ['11', '21'])], tier, 'tank/bak');
    const r = planGuestRestore(request(p as RestorePoint, { asVmid: 200 }), local());
    assert.ok('refused' in r && /encrypted.*zfs send -w/.test(r.refused.join('\n')));
  });
});

describe('restore plan: one disk', () => {
  const ex = { node: 'pve1', type: 'qemu' as const, configText: CONFIG, running: true };
  it('becomes the next free volume of the existing guest, even a running one', () => {
    const here = [
      ds('rpool/data/vm-100-disk-0'),
      ds('rpool/data/vm-100-disk-2'),
      ds('rpool/data/vm-100-disk-3'),
    ];
    const r = planDiskRestore({ ...request(p2), disk: 'scsi0' }, local(here, ex));
    if ('refused' in r) throw new Error(r.refused.join('; '));
    const plan: DiskOnlyPlan = r.plan;
    // disk-1 is free on the storage but named by the config: taken.
    assert.equal(plan.disk.target, 'rpool/data/vm-100-disk-4');
    assert.equal(plan.disk.temp, 'rpool/data/zbm-restore-vm-100-disk-4');
    assert.equal(plan.disk.volume, 'local-zfs:vm-100-disk-4');
    assert.equal(plan.configPath, 'nodes/pve1/qemu-server/100.conf');
  });

  it('needs the guest on this node and the disk in the backup', () => {
    const gone = planDiskRestore({ ...request(p1), disk: 'scsi0' }, local());
    assert.ok('refused' in gone && /does not exist on this node/.test(gone.refused.join('\n')));
    const nodisk = planDiskRestore({ ...request(p1), disk: 'scsi7' }, local([], ex));
    assert.ok(
      'refused' in nodisk && /has no disk scsi7 \(it has scsi0, efidisk0\)/.test(nodisk.refused.join('\n')),
    );
  });
});

describe('a linked clone', () => {
  const LS = 'bak-zbm-20261126T090000Z';
  const clone = manifest(S2, ['52', '']);
  const m: Manifest = {
    ...clone,
    vmid: 105,
    name: 'clone105',
    disks: [
      {
        ...(clone.disks[0] as Manifest['disks'][number]),
        volume: 'local-zfs:base-102-disk-0/vm-105-disk-0',
        source: 'rpool/data/vm-105-disk-0',
        target: 'main/bak-zbm/vm-105-disk-0',
        guid: '52',
      },
    ],
  };
  const tier = [
    ds('tank/bak', []),
    ds('tank/bak/base-102-disk-0', [[LS, '40']]),
    ds('tank/bak/vm-105-disk-0', [[S2, '52']], { origin: `tank/bak/base-102-disk-0@${LS}` }),
  ];
  const point = restorePoints([m], tier, 'tank/bak')[0] as RestorePoint;
  const config = 'name: clone105\nscsi0: local-zfs:base-102-disk-0/vm-105-disk-0,size=64M\n';
  const origins = originsOf(tier);
  const template = (guid: string) => ds('rpool/data/base-102-disk-0', [['__base__', guid]]);

  it("comes back as a linked clone of the template's @__base__ here when it is its copy's origin by guid", () => {
    const plan = guestPlan(
      planGuestRestore(request(point, { configText: config, origins, asVmid: 205 }), local([template('40')])),
    );
    const d = plan.disks[0];
    assert.deepEqual(d?.linked, {
      origin: 'rpool/data/base-102-disk-0@__base__',
      from: `tank/bak/base-102-disk-0@${LS}`,
    });
    assert.equal(d?.volume, 'local-zfs:base-102-disk-0/vm-205-disk-0');
    assert.equal(d?.target, 'rpool/data/vm-205-disk-0');
    assert.match(plan.configText, /^scsi0: local-zfs:base-102-disk-0\/vm-205-disk-0,size=64M$/m);
    assert.deepEqual(plan.warnings, []);
    assert.match(
      describePlan(plan),
      /as local-zfs:base-102-disk-0\/vm-205-disk-0, a linked clone of rpool\/data\/base-102-disk-0@__base__/,
    );
  });

  it('comes back as a full copy, saying why, when the template is not here, is another one, or the copy is no clone', () => {
    const cases: [Dataset[], Map<string, { snapshot: string; guid: string }>, RegExp][] = [
      [[], origins, /rpool\/data\/base-102-disk-0@__base__ is not on this node/],
      [[template('41')], origins, /\(guid 41\) is not the origin of its copy on zbm-replica:tank\/bak/],
      [[template('40')], new Map(), /its copy on zbm-replica:tank\/bak is no clone of its template's/],
    ];
    for (const [here, o, why] of cases) {
      const plan = guestPlan(
        planGuestRestore(request(point, { configText: config, origins: o, asVmid: 205 }), local(here)),
      );
      assert.equal(plan.disks[0]?.linked, null);
      assert.equal(plan.disks[0]?.volume, 'local-zfs:vm-205-disk-0');
      assert.match(plan.configText, /^scsi0: local-zfs:vm-205-disk-0,size=64M$/m);
      assert.equal(plan.warnings.length, 1);
      assert.match(plan.warnings[0] ?? '', /^scsi0 is restored as a full copy, not as a linked clone: /);
      assert.match(plan.warnings[0] ?? '', why);
    }
  });
});
