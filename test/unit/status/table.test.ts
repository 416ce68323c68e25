import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildStatus, renderStatusTable } from '../../../src/status/table.ts';
import type { Dataset, Snapshot } from '../../../src/zfs/types.ts';

const NOW = 1_800_000_000;
function snap(dataset: string, short: string, age: number, guid = `${dataset}@${short}`): Snapshot {
  return {
    name: `${dataset}@${short}`,
    dataset,
    short,
    guid,
    createtxg: NOW - age,
    creation: NOW - age,
    used: 0,
    referenced: 0,
    userrefs: 0,
    props: {},
  };
}
function ds(name: string, snapshots: Snapshot[], used = 1024): Dataset {
  return {
    name,
    type: 'volume',
    guid: name,
    creation: 0,
    used,
    referenced: 0,
    written: 0,
    encrypted: false,
    resumeToken: null,
    origin: null,
    props: {},
    snapshots,
    bookmarks: [],
  };
}

const R = 'main/b';
const d0 = ds(`${R}/vm-100-disk-0`, [
  snap(`${R}/vm-100-disk-0`, 'bak-1', 7200),
  snap(`${R}/vm-100-disk-0`, 'bak-2', 600),
]);
const d1 = ds(`${R}/vm-100-disk-1`, [
  snap(`${R}/vm-100-disk-1`, 'bak-2', 600),
  snap(`${R}/vm-100-disk-1`, 'manual', 60),
]);
const c0 = ds(`${R}/subvol-103-disk-0`, [snap(`${R}/subvol-103-disk-0`, 'bak-1', 90000)]);
const other = ds(`${R}/misc`, []);
const listing = [ds(R, []), c0, other, d0, d1];

describe('zbm status', () => {
  it('groups datasets per guest by VMID: disks, newest backup and age, backups, space', () => {
    const rows = buildStatus(listing, R, 'bak-', NOW, new Map([[100, 'web']]));
    assert.deepEqual(
      rows.map((r) => [r.vmid, r.name, r.disks.length, r.newest, r.newestAgeSeconds, r.backups, r.usedBytes]),
      [
        [100, 'web', 2, 'bak-2', 600, 2, 2048],
        [103, '', 1, 'bak-1', 90000, 1, 1024],
        [null, '', 1, null, null, 0, 1024],
      ],
    );
    assert.equal(rows[0]?.replicationLagSeconds, undefined);
  });

  it('measures the replication lag per guest as its most lagging disk, by guid', () => {
    const remote = {
      name: 'zbm-replica',
      root: 'rep/b',
      datasets: new Map([
        ['rep/b/vm-100-disk-0', ds('rep/b/vm-100-disk-0', [snap(`${R}/vm-100-disk-0`, 'bak-1', 7200)])],
        ['rep/b/vm-100-disk-1', ds('rep/b/vm-100-disk-1', [snap(`${R}/vm-100-disk-1`, 'bak-2', 600)])],
      ]),
    };
    const rows = buildStatus(listing, R, 'bak-', NOW, new Map(), remote);
    assert.equal(rows[0]?.replicationLagSeconds, 7200);
    assert.equal(rows[1]?.replicationLagSeconds, null);
    assert.deepEqual(rows[1]?.notReplicated, [`${R}/subvol-103-disk-0`]);
    const text = renderStatusTable(rows, 'zbm-replica');
    const [head, first, second] = text.split('\n');
    assert.match(head ?? '', /^vmid +name +disks +newest backup +age +backups +used +lag to zbm-replica$/);
    assert.match(first ?? '', /^100 +- +2 +bak-2 +10 min +2 +2\.0 KiB +2\.0 h$/);
    assert.match(second ?? '', /^103 .* 25\.0 h +1 +1\.0 KiB +not replicated \(1 disk\(s\)\)$/);
  });

  it("counts a disk's later chain as that disk, and its lag from the newest backup of any chain", () => {
    const later = `${R}/vm-100-disk-0.bak-20261130T100000Z`;
    const chained = [...listing, ds(later, [snap(later, 'bak-20261130T100000Z', 60)])];
    const [row] = buildStatus(chained, R, 'bak-', NOW, new Map());
    assert.deepEqual(row?.disks, [`${R}/vm-100-disk-0`, `${R}/vm-100-disk-1`]);
    assert.equal(row?.newest, 'bak-20261130T100000Z');
    assert.equal(row?.backups, 3);
    const remote = (withLater: boolean) => ({
      name: 'zbm-replica',
      root: 'rep/b',
      datasets: new Map([
        ['rep/b/vm-100-disk-0', ds('rep/b/vm-100-disk-0', [snap(`${R}/vm-100-disk-0`, 'bak-2', 600)])],
        ['rep/b/vm-100-disk-1', ds('rep/b/vm-100-disk-1', [snap(`${R}/vm-100-disk-1`, 'bak-2', 600)])],
        ...(withLater
          ? [
              [
                `rep/b/vm-100-disk-0.bak-20261130T100000Z`,
                ds('x', [snap(later, 'bak-20261130T100000Z', 60)]),
              ] as const,
            ]
          : []),
      ]),
    });
    assert.equal(
      buildStatus(chained, R, 'bak-', NOW, new Map(), remote(false))[0]?.replicationLagSeconds,
      600,
    );
    assert.equal(
      buildStatus(chained, R, 'bak-', NOW, new Map(), remote(true))[0]?.replicationLagSeconds,
      600,
    );
    const fresh = [...chained.filter((d) => d.name !== `${R}/vm-100-disk-1`)];
    assert.equal(buildStatus(fresh, R, 'bak-', NOW, new Map(), remote(true))[0]?.replicationLagSeconds, 60);
  });
});
