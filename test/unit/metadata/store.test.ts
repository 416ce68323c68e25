import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { datasetsByGuest, metadataPaths, snapshotsByGuest } from '../../../src/metadata/store.ts';
import { dataset, snapshot } from '../../support/zfs.ts';

function disk(name: string, ...shorts: string[]) {
  return dataset(
    name,
    shorts.map((s) => snapshot(name, s)),
  );
}

describe('the metadata store', () => {
  it('puts the config and the manifest of a snapshot in the folder of its guest', () => {
    assert.deepEqual(metadataPaths('/var/lib/zbm', 100, 'bak-zbm-20261126T110503Z'), {
      config: '/var/lib/zbm/100/bak-zbm-20261126T110503Z.conf',
      manifest: '/var/lib/zbm/100/bak-zbm-20261126T110503Z.json',
    });
  });

  it('groups the datasets of each guest by the VMID in their names, and leaves out the others', () => {
    const a = disk('main/bak/vm-100-disk-0');
    const b = disk('main/bak/vm-101-disk-0');
    const c = disk('main/bak/subvol-100-disk-1');
    const grouped = datasetsByGuest([a, disk('main/bak'), b, c, disk('main/bak/data-100-disk-0')]);
    assert.deepEqual(
      [...grouped].map(([vmid, ds]) => [vmid, ds.map((d) => d.name)]),
      [
        [100, ['main/bak/vm-100-disk-0', 'main/bak/subvol-100-disk-1']],
        [101, ['main/bak/vm-101-disk-0']],
      ],
    );
  });

  it('knows a snapshot of a guest when any one of its disks has it', () => {
    const byGuest = snapshotsByGuest([
      disk('main/bak/vm-100-disk-0', 's1', 's2'),
      disk('main/bak/vm-100-disk-1', 's2', 's3'),
      disk('main/bak/vm-102-disk-0'),
      disk('main/bak', 's9'),
    ]);
    assert.deepEqual(
      [...byGuest].map(([vmid, s]) => [vmid, [...s].sort()]),
      [
        [100, ['s1', 's2', 's3']],
        [102, []],
      ],
    );
  });
});
